//! Reading the files cairn is given (plans, changes, metrics, configs,
//! plugins, CA files, decision logs) within a documented size limit, after
//! checking what kind of file each is: a FIFO, a device or a socket is
//! refused before a byte is read, never waited on or read forever.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

const MIB: u64 = 1 << 20;

/// Largest plan file (`cairn.toml`) or lock file.
pub const MAX_PLAN_BYTES: u64 = 8 * MIB;
/// Largest `--config @FILE` or config file.
pub const MAX_CONFIG_BYTES: u64 = MIB;
/// Largest `metrics.json`.
pub const MAX_METRICS_BYTES: u64 = 8 * MIB;
/// Largest plugin (`.wasm`); the Python SDK's components are ~18 MB.
pub const MAX_PLUGIN_BYTES: u64 = 256 * MIB;
/// Largest single document of a change (one side: before or after).
pub const MAX_DOCUMENT_BYTES: u64 = 32 * MIB;
/// Largest change: every document's before and after together. Each call
/// hands the change to a plugin, so this bounds what a call must copy.
pub const MAX_CHANGE_BYTES: u64 = 128 * MIB;
/// Largest change bundle file (its documents may be base64, 4/3 larger).
pub const MAX_BUNDLE_BYTES: u64 = 2 * MAX_CHANGE_BYTES;
/// Largest CA certificate file of a fault-proxy upstream.
pub const MAX_CA_FILE_BYTES: u64 = MIB;
/// Largest decision log `cairn experiment replay` reads.
pub const MAX_DECISION_LOG_BYTES: u64 = 1 << 30;

/// Reads `path` into memory if it is a regular file (symlinks to one are
/// followed) of at most `limit` bytes; `what` names the input in the error
/// ("plan", "plugin"). A FIFO is opened without blocking and refused, as is
/// every other kind of file that is not regular.
///
/// Errors are `io::Error`s so callers keep their own error types: kind
/// `InvalidInput` for a file that is not regular, `FileTooLarge` for one
/// over the limit, with a message that says which and what the limit is.
pub fn read_limited(path: &Path, what: &str, limit: u64) -> io::Result<Vec<u8>> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {}, not a regular file; a {what} must be a regular file",
                kind_of(&meta.file_type())
            ),
        ));
    }
    if meta.len() > limit {
        return Err(too_large(what, Some(meta.len()), limit));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow after the check: read one byte past the limit at
    // most, to tell.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(what, None, limit));
    }
    Ok(bytes)
}

/// [`read_limited`] for text: invalid UTF-8 is an `InvalidData` error that
/// names the byte offset.
pub fn read_limited_text(path: &Path, what: &str, limit: u64) -> io::Result<String> {
    String::from_utf8(read_limited(path, what, limit)?).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "is not UTF-8 text (invalid byte at offset {})",
                err.utf8_error().valid_up_to()
            ),
        )
    })
}

/// The error for an input over its limit (`size` when known up front).
pub fn too_large(what: &str, size: Option<u64>, limit: u64) -> io::Error {
    let size = match size {
        Some(size) => format!("{} ({size} bytes)", human_size(size)),
        None => "more than that".to_owned(),
    };
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("is {size}; a {what} may be at most {}", human_size(limit)),
    )
}

/// What kind of file a non-regular file is, for messages.
pub fn kind_of(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// `1.5 GiB`, `32 MiB`, `512 KiB`, `12 bytes`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            let whole = bytes / unit;
            let tenths = (bytes % unit) * 10 / unit;
            return if tenths == 0 {
                format!("{whole} {name}")
            } else {
                format!("{whole}.{tenths} {name}")
            };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("plan.toml");
        mkfifo(&fifo);
        let err = read_limited(&fifo, "plan", MAX_PLAN_BYTES).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            "is a FIFO (named pipe), not a regular file; a plan must be a regular file"
        );
    }

    #[test]
    fn devices_and_directories_are_refused_before_reading() {
        let err = read_limited(Path::new("/dev/zero"), "plugin", MAX_PLUGIN_BYTES).unwrap_err();
        assert!(
            err.to_string().starts_with("is a character device"),
            "{err}"
        );
        let err = read_limited(Path::new("/"), "plan", MAX_PLAN_BYTES).unwrap_err();
        assert!(err.to_string().starts_with("is a directory"), "{err}");
    }

    #[test]
    fn a_sparse_file_over_the_limit_is_refused_from_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.wasm");
        let file = File::create(&path).unwrap();
        // 2 GiB of holes: nothing is read, the size alone refuses it.
        file.set_len(2 << 30).unwrap();
        let err = read_limited(&path, "plugin", MAX_PLUGIN_BYTES).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(
            err.to_string(),
            "is 2 GiB (2147483648 bytes); a plugin may be at most 256 MiB"
        );
    }

    #[test]
    fn a_file_at_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_limited(&path, "config", 10).unwrap(), b"0123456789");
        assert!(read_limited(&path, "config", 9).is_err());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(12), "12 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(MAX_PLAN_BYTES), "8 MiB");
    }
}
