//! Maps and sets keyed by guest paths, and path comparisons, for the host's busiest
//! path: a file call of a guest looks a path up in several of them.
//!
//! - Keys are compared inline ([`same`]), eight bytes at a time: the paths are short,
//!   and `==` on strings calls the C library's `memcmp`, whose call cost more than the
//!   comparison (a fifth of the host's own time per file call in a file-heavy guest).
//! - Hashing is foldhash, seeded per map from address-space randomisation, so a guest
//!   cannot choose colliding paths ahead (SipHash cost as much as the rest of a lookup).

use std::hash::{Hash, Hasher};

type Inner<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// Whether two strings are the same bytes, compared inline.
#[inline]
pub fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_rest) = a.as_chunks::<8>();
    let (b_words, b_rest) = b.as_chunks::<8>();
    a_words
        .iter()
        .zip(b_words)
        .all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && a_rest.iter().zip(b_rest).all(|(x, y)| x == y)
}

/// What follows `prefix` in `path` when `path` starts with it, compared inline.
#[inline]
pub fn after_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let head = path.as_bytes().get(..prefix.len())?;
    if !same_bytes(head, prefix.as_bytes()) {
        return None;
    }
    // The bytes equal a whole string, so they end on a character boundary.
    path.get(prefix.len()..)
}

/// A path as a lookup key: hashes as the `String` keys do, compares inline.
struct Key<'a>(&'a str);

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl hashbrown::Equivalent<String> for Key<'_> {
    fn equivalent(&self, key: &String) -> bool {
        same(self.0, key)
    }
}

/// A map from guest paths.
pub struct PathMap<V>(Inner<String, V>);

impl<V> Default for PathMap<V> {
    fn default() -> Self {
        Self(Inner::default())
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for PathMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<V> PathMap<V> {
    pub fn get(&self, path: &str) -> Option<&V> {
        self.0.get(&Key(path))
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut V> {
        self.0.get_mut(&Key(path))
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.0.contains_key(&Key(path))
    }

    pub fn insert(&mut self, path: String, value: V) -> Option<V> {
        self.0.insert(path, value)
    }

    pub fn remove(&mut self, path: &str) -> Option<V> {
        self.0.remove(&Key(path))
    }

    pub fn retain(&mut self, keep: impl FnMut(&String, &mut V) -> bool) {
        self.0.retain(keep);
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// A set of guest paths.
#[derive(Default)]
pub struct PathSet(PathMap<()>);

impl std::fmt::Debug for PathSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl PathSet {
    pub fn contains(&self, path: &str) -> bool {
        self.0.contains_key(path)
    }

    /// Adds `path`; false if it was there.
    pub fn insert(&mut self, path: String) -> bool {
        self.0.insert(path, ()).is_none()
    }

    /// Removes `path`; false if it was not there.
    pub fn remove(&mut self, path: &str) -> bool {
        self.0.remove(path).is_some()
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String) -> bool) {
        self.0.retain(|path, ()| keep(path));
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_agrees_with_eq_at_every_length_and_difference() {
        let base = "usr/local/lib/python3.15/site-packages/é/x";
        for len in 0..=base.len() {
            let Some(a) = base.get(..len) else { continue };
            assert!(same(a, a));
            for other in 0..=base.len() {
                if let Some(b) = base.get(..other) {
                    assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
                }
            }
            // One byte changed at each place.
            for at in 0..len {
                let mut bytes = a.as_bytes().to_vec();
                bytes[at] ^= 1;
                if let Ok(b) = String::from_utf8(bytes) {
                    assert!(!same(a, &b), "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn after_prefix_agrees_with_strip_prefix() {
        for (path, prefix) in [
            ("tree/d000", "tree"),
            ("tree", "tree"),
            ("tre", "tree"),
            ("treex/a", "tree"),
            ("", ""),
            ("a", ""),
            ("éa/b", "é"),
            ("é", "e"),
        ] {
            assert_eq!(
                after_prefix(path, prefix),
                path.strip_prefix(prefix),
                "{path:?} {prefix:?}"
            );
        }
    }

    #[test]
    fn maps_and_sets_behave_as_std_ones() {
        let mut map = PathMap::default();
        let mut reference = std::collections::HashMap::new();
        let mut set = PathSet::default();
        for i in 0..500u32 {
            let path = format!("work/d{}/new{i:04}", i % 7);
            assert_eq!(
                map.insert(path.clone(), i),
                reference.insert(path.clone(), i)
            );
            assert!(set.insert(path.clone()));
            assert!(!set.insert(path));
        }
        for i in (0..500u32).step_by(3) {
            let path = format!("work/d{}/new{i:04}", i % 7);
            assert_eq!(map.remove(&path), reference.remove(&path));
            assert!(set.remove(&path));
            assert!(!set.remove(&path));
        }
        map.retain(|p, _| !p.starts_with("work/d1/"));
        reference.retain(|p: &String, _| !p.starts_with("work/d1/"));
        set.retain(|p| !p.starts_with("work/d1/"));
        assert_eq!(map.len(), reference.len());
        assert_eq!(set.len(), reference.len());
        for i in 0..500u32 {
            let path = format!("work/d{}/new{i:04}", i % 7);
            assert_eq!(map.get(&path), reference.get(&path));
            assert_eq!(map.contains_key(&path), reference.contains_key(&path));
            assert_eq!(set.contains(&path), reference.contains_key(&path));
        }
        assert!(map.get("work/d0/new0001x").is_none());
        assert!(!set.contains(""));
    }
}
