//! Shared helpers for the workspace integration tests.
//!
//! * [`fixtures_dir`]: the vendored test data (`tests/fixtures/*.tar.xz`),
//!   unpacked once into `<workspace>/target/fixtures/`.
//! * [`temp_db_dir`]: a temporary directory for a test database under
//!   `<workspace>/target/test-dbs/` (on disk: tmpfs refuses O_DIRECT).
//! * [`workload`]: the kill-test workload and an alloy-trie model of the
//!   state, shared by the crash child binary and the durability tests.

pub mod workload;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent directory")
        .to_path_buf()
}

/// `<workspace>/target`, or `CARGO_TARGET_DIR` when that is set.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace_root().join(dir) }
        }
        _ => workspace_root().join("target"),
    }
}

/// The vendored archives, `tests/fixtures/*.tar.xz`.
pub fn fixture_archives() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut archives: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("fixtures dir entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".tar.xz"))
        .collect();
    archives.sort();
    archives
}

/// Unpacks every vendored archive once into `<target>/fixtures/` and returns
/// that directory. It then holds `ethereum-tests/` and `mainnet-blocks/`.
///
/// Idempotent and safe when several test binaries (processes) run at once:
/// each archive is unpacked into a private temporary sibling directory whose
/// top-level entries are then renamed into place (a rename is atomic; when the
/// destination already exists another process won the race, and its copy is
/// kept). A stamp file, itself written by rename, marks an archive as done.
/// Delete `target/fixtures/` to force a fresh unpack.
pub fn fixtures_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().join("fixtures");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        for archive in fixture_archives() {
            unpack_once(&archive, &dir)
                .unwrap_or_else(|e| panic!("cannot unpack {}: {e}", archive.display()));
        }
        dir
    })
    .clone()
}

/// `<target>/fixtures/ethereum-tests` (ethereum/tests v14.1).
pub fn ethereum_tests_dir() -> PathBuf {
    fixtures_dir().join("ethereum-tests")
}

/// `<target>/fixtures/mainnet-blocks`.
pub fn mainnet_blocks_dir() -> PathBuf {
    fixtures_dir().join("mainnet-blocks")
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

fn unpack_once(archive: &Path, dest: &Path) -> io::Result<()> {
    let file_name =
        archive.file_name().expect("archive has a file name").to_string_lossy().into_owned();
    let stamp = dest.join(format!(".{file_name}.unpacked"));
    let archive_len = fs::metadata(archive)?.len();
    let stamp_text = format!("{archive_len}\n");
    if fs::read_to_string(&stamp).is_ok_and(|text| text == stamp_text) {
        return Ok(());
    }

    let tmp = dest.join(format!(".tmp-{file_name}-{}", unique_suffix()));
    fs::create_dir_all(&tmp)?;
    let result = (|| {
        let reader = io::BufReader::new(fs::File::open(archive)?);
        let mut tar = tar::Archive::new(xz2::read::XzDecoder::new(reader));
        tar.set_preserve_mtime(false);
        tar.unpack(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let entry = entry?;
            let target = dest.join(entry.file_name());
            if target.exists() {
                continue; // Unpacked by another process (renames are atomic).
            }
            if let Err(e) = fs::rename(entry.path(), &target) {
                // Lost a race: the other process's rename landed first.
                if !target.exists() {
                    return Err(e);
                }
            }
        }
        let stamp_tmp = dest.join(format!(".tmp-stamp-{file_name}-{}", unique_suffix()));
        fs::write(&stamp_tmp, &stamp_text)?;
        fs::rename(&stamp_tmp, &stamp)
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}

/// Threads a test spreads its files over: `WAKE_TEST_THREADS`, else the
/// available cores, at most 2 (the CI machine's count).
pub fn test_threads() -> usize {
    std::env::var("WAKE_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(2)))
        .max(1)
}

/// A fresh temporary directory for a test database, under
/// `<target>/test-dbs/` (on disk, not tmpfs, so O_DIRECT works). Removed when
/// the returned value drops.
pub fn temp_db_dir(name: &str) -> tempfile::TempDir {
    let root = target_dir().join("test-dbs");
    fs::create_dir_all(&root).unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    let prefix: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(64)
        .collect();
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("cannot create a temp dir under {}: {e}", root.display()))
}
