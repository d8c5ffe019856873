//! Unit tests of the content store over real directories.

use super::{Digest, Store, StoreError};
use oci_spec::image::{Descriptor, MediaType};
use std::sync::Arc;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store")).expect("open store");
    (dir, store)
}

fn tmp_files(store: &Store) -> Vec<String> {
    std::fs::read_dir(store.root().join("blobs/sha256"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn a_new_store_is_an_empty_oci_layout() {
    let (_dir, store) = store();
    let layout = std::fs::read_to_string(store.root().join("oci-layout")).expect("oci-layout");
    assert_eq!(layout, r#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = store.index().expect("index");
    assert_eq!(index.schema_version(), 2);
    assert!(index.manifests().is_empty());
    assert!(store.root().join("blobs/sha256").is_dir());
    // Opening again keeps what is there.
    drop(store);
    assert!(Store::open(&_dir.path().join("store")).is_ok());
}

#[test]
fn another_layout_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"9.9"}"#,
    )
    .expect("write");
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Layout { .. })
    ));
}

#[test]
fn blobs_round_trip_under_their_digest() {
    let (_dir, store) = store();
    let blob = store.put_blob(&b"hello"[..]).expect("put");
    assert_eq!(
        blob.digest.to_string(),
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(blob.size, 5);
    assert!(store.has_blob(&blob.digest));
    assert_eq!(store.read_blob(&blob.digest).expect("read"), b"hello");
    assert_eq!(
        store.put_blob(&b"hello"[..]).expect("again"),
        blob,
        "storing twice is idempotent"
    );
    assert_eq!(store.blobs().expect("list"), vec![blob]);
    assert!(tmp_files(&store).is_empty());
}

#[test]
fn a_blob_that_does_not_match_its_digest_or_size_is_never_visible() {
    let (_dir, store) = store();
    let claimed = Digest::of(b"the real content");
    match store.put_blob_verified(&b"tampered content"[..], &claimed, 16) {
        Err(StoreError::DigestMismatch { expected, .. }) => assert_eq!(expected, claimed),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!store.has_blob(&claimed));
    match store.put_blob_verified(&b"the real content"[..], &claimed, 99) {
        Err(StoreError::SizeMismatch {
            expected: 99,
            actual: 16,
            ..
        }) => {}
        other => panic!("expected a size mismatch, got {other:?}"),
    }
    assert!(!store.has_blob(&claimed));
    assert!(
        tmp_files(&store).is_empty(),
        "no temporary file is left behind"
    );
    assert!(store.blobs().expect("list").is_empty());
    store
        .put_blob_verified(&b"the real content"[..], &claimed, 16)
        .expect("the honest upload is stored");
}

#[test]
fn a_corrupted_blob_is_detected() {
    let (_dir, store) = store();
    let blob = store.put_blob(&b"precious layer bytes"[..]).expect("put");
    assert!(store.verify_blob(&blob.digest).expect("verify"));
    std::fs::write(
        store.root().join("blobs/sha256").join(blob.digest.hex()),
        b"bit rot",
    )
    .expect("corrupt");
    assert!(!store.verify_blob(&blob.digest).expect("verify"));
    assert!(matches!(
        store.read_blob(&blob.digest),
        Err(StoreError::DigestMismatch { .. })
    ));
    let missing = Digest::of(b"never stored");
    assert!(matches!(
        store.open_blob(&missing),
        Err(StoreError::MissingBlob(_))
    ));
}

#[test]
fn digests_are_parsed_strictly() {
    let good = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    assert_eq!(good.parse::<Digest>().expect("valid").to_string(), good);
    for bad in [
        "",
        "sha256:",
        "sha512:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
        "sha256:2cf24dba",
        "sha256:../../../../etc/passwd/../../../../../../../../../../../../../../../../x",
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982g",
    ] {
        assert!(bad.parse::<Digest>().is_err(), "{bad} should be refused");
    }
}

#[test]
fn concurrent_index_updates_all_land() {
    let (_dir, store) = store();
    let root = store.root().to_owned();
    drop(store);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                // Each thread opens its own store, as separate processes would.
                let store = Store::open(&root).expect("open");
                let blob = store
                    .put_blob(format!("manifest {i}").as_bytes())
                    .expect("put");
                store
                    .update_index(|index| {
                        let mut manifests = index.manifests().clone();
                        // Widen the window between read and write to invite lost updates.
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        manifests.push(Descriptor::new(
                            MediaType::ImageManifest,
                            blob.size,
                            blob.digest.to_oci(),
                        ));
                        index.set_manifests(manifests);
                    })
                    .expect("update");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let store = Arc::new(Store::open(&root).expect("open"));
    assert_eq!(
        store.index().expect("index").manifests().len(),
        8,
        "no update was lost"
    );
    assert_eq!(store.blobs().expect("blobs").len(), 8);
}

#[test]
fn a_checked_blob_fails_at_its_end_unless_it_is_whole() {
    use std::io::Read;
    let (_dir, store) = store();
    let blob = store.put_blob(&b"hello, blob"[..]).expect("put");
    let read = |size: u64| {
        let mut out = Vec::new();
        store
            .open_blob_checked(&blob.digest, size)
            .expect("open")
            .read_to_end(&mut out)
            .map(|_| out)
    };
    assert_eq!(read(blob.size).expect("whole"), b"hello, blob");
    for size in [blob.size - 1, blob.size + 1] {
        let e = read(size).expect_err("wrong size");
        assert!(
            matches!(StoreError::from_io(&e), Some(StoreError::Damaged { .. })),
            "{e}"
        );
    }
    // Same size, other bytes: the digest catches it.
    let path = store.root().join("blobs/sha256").join(blob.digest.hex());
    std::fs::write(&path, b"hello, blub").expect("damage");
    let e = read(blob.size).expect_err("damaged");
    assert!(e.to_string().contains("hashes to"), "{e}");
}

#[test]
fn a_lost_index_is_not_replaced_by_an_empty_one() {
    let (dir, store) = store();
    store.put_blob(&b"some image's blob"[..]).expect("put");
    drop(store);
    let root = dir.path().join("store");
    std::fs::remove_file(root.join("index.json")).expect("lose it");
    let store = Store::open(&root).expect("open");
    assert!(
        !root.join("index.json").exists(),
        "open must not recreate it"
    );
    assert!(matches!(
        store.index(),
        Err(StoreError::IndexMissing { blobs: 1, .. })
    ));
    assert!(matches!(
        store.update_index(|_| ()),
        Err(StoreError::IndexMissing { .. })
    ));
    assert!(!root.join("index.json").exists());
    // An empty store may start a new index.
    let empty = tempfile::tempdir().expect("temp dir");
    let fresh = Store::open(&empty.path().join("s")).expect("open");
    std::fs::remove_file(empty.path().join("s/index.json")).expect("remove");
    assert!(fresh.index().expect("index").manifests().is_empty());
    fresh.update_index(|_| ()).expect("update");
}
