//! The books, kept in one JSON file in the data directory and held in memory.
//!
//! Every change is written to a temporary file, flushed to disk and renamed over
//! `library.json`: the rename is atomic, so a container killed at any moment leaves either
//! the old file or the new one, never half of one. A change that cannot be written is not
//! made in memory either.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The name of the data file in the data directory.
pub const FILE_NAME: &str = "library.json";
/// The temporary file a new version is written to before the rename.
const TEMP_NAME: &str = ".library.json.tmp";

/// One book, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Book {
    pub id: u64,
    pub title: String,
    pub subtitle: String,
    pub author: String,
    pub isbn: String,
}

/// What `library.json` holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contents {
    /// The id the next created book gets: ids are never reused, as a database sequence.
    next_id: u64,
    /// Sorted by id.
    books: Vec<Book>,
}

/// The books of one data directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    contents: Contents,
}

impl Store {
    /// Opens the data directory (creating it if missing) and reads its books.
    ///
    /// # Errors
    /// A one-line message when the directory cannot be created or the data file cannot be
    /// read or is not a library file.
    pub fn open(dir: &Path) -> Result<Self, String> {
        fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let contents = match fs::read(&path) {
            Ok(bytes) => {
                let mut contents: Contents = serde_json::from_slice(&bytes).map_err(|e| {
                    format!(
                        "{} is not a library data file ({e}); move it away to start with an empty library",
                        path.display()
                    )
                })?;
                contents.books.sort_by_key(|b| b.id);
                let max = contents.books.last().map_or(0, |b| b.id);
                contents.next_id = contents.next_id.max(max + 1);
                contents
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Contents {
                next_id: 1,
                books: Vec::new(),
            },
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Self {
            dir: dir.to_owned(),
            contents,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// All books, by id.
    pub fn books(&self) -> &[Book] {
        &self.contents.books
    }

    /// The book with this id.
    pub fn get(&self, id: u64) -> Option<&Book> {
        self.index(id).map(|i| &self.contents.books[i])
    }

    /// Adds a book with the next id and returns it.
    ///
    /// # Errors
    /// The data file could not be written; nothing changed.
    pub fn create(&mut self, fields: Fields) -> Result<Book, String> {
        let mut next = self.contents.clone();
        let book = fields.into_book(next.next_id);
        next.next_id += 1;
        next.books.push(book.clone());
        self.commit(next)?;
        Ok(book)
    }

    /// Adds the books whose ISBN the library does not have yet, in one atomic write
    /// (Django's `loaddata`, made safe to run again); how many were added.
    ///
    /// # Errors
    /// The data file could not be written; nothing changed.
    pub fn load(&mut self, books: Vec<Fields>) -> Result<usize, String> {
        let mut next = self.contents.clone();
        let mut added = 0;
        for fields in books {
            if next.books.iter().any(|b| b.isbn == fields.isbn) {
                continue;
            }
            next.books.push(fields.into_book(next.next_id));
            next.next_id += 1;
            added += 1;
        }
        if added > 0 {
            self.commit(next)?;
        }
        Ok(added)
    }

    /// Replaces the fields of a book; `Ok(None)` when there is no such book.
    ///
    /// # Errors
    /// The data file could not be written; nothing changed.
    pub fn replace(&mut self, id: u64, fields: Fields) -> Result<Option<Book>, String> {
        let Some(i) = self.index(id) else {
            return Ok(None);
        };
        let mut next = self.contents.clone();
        next.books[i] = fields.into_book(id);
        let book = next.books[i].clone();
        self.commit(next)?;
        Ok(Some(book))
    }

    /// Removes a book; `Ok(false)` when there is no such book.
    ///
    /// # Errors
    /// The data file could not be written; nothing changed.
    pub fn delete(&mut self, id: u64) -> Result<bool, String> {
        let Some(i) = self.index(id) else {
            return Ok(false);
        };
        let mut next = self.contents.clone();
        next.books.remove(i);
        self.commit(next)?;
        Ok(true)
    }

    fn index(&self, id: u64) -> Option<usize> {
        self.contents.books.binary_search_by_key(&id, |b| b.id).ok()
    }

    /// Writes `next` atomically, then keeps it in memory.
    fn commit(&mut self, next: Contents) -> Result<(), String> {
        let mut bytes = serde_json::to_vec_pretty(&next)
            .map_err(|e| format!("cannot encode the library: {e}"))?;
        bytes.push(b'\n');
        let temp = self.dir.join(TEMP_NAME);
        let path = self.dir.join(FILE_NAME);
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &path)
        };
        write().map_err(|e| format!("cannot save the library to {}: {e}", path.display()))?;
        self.contents = next;
        Ok(())
    }
}

/// The fields of a book without its id: what a create or a replace gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub title: String,
    pub subtitle: String,
    pub author: String,
    pub isbn: String,
}

impl Fields {
    fn into_book(self, id: u64) -> Book {
        Book {
            id,
            title: self.title,
            subtitle: self.subtitle,
            author: self.author,
            isbn: self.isbn,
        }
    }
}

impl From<&Book> for Fields {
    fn from(b: &Book) -> Self {
        Self {
            title: b.title.clone(),
            subtitle: b.subtitle.clone(),
            author: b.author.clone(),
            isbn: b.isbn.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(title: &str) -> Fields {
        Fields {
            title: title.into(),
            subtitle: String::new(),
            author: "A".into(),
            isbn: "1".into(),
        }
    }

    #[test]
    fn changes_survive_a_reopen_and_ids_are_not_reused() {
        let dir = std::env::temp_dir().join(format!("library-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).expect("open");
        assert_eq!(store.create(fields("one")).expect("create").id, 1);
        assert_eq!(store.create(fields("two")).expect("create").id, 2);
        assert!(store.delete(2).expect("delete"));
        let again = Store::open(&dir).expect("reopen");
        assert_eq!(again.books().len(), 1);
        assert_eq!(again.get(1).map(|b| b.title.as_str()), Some("one"));
        let mut again = again;
        assert_eq!(again.create(fields("three")).expect("create").id, 3);
        assert!(!dir.join(TEMP_NAME).exists());
        fs::remove_dir_all(&dir).expect("clean up");
    }
}
