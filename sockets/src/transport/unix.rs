//! Unix domain sockets (`unix:///path`): binding with the file's
//! permissions set, and a stale socket file left by a process that died.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use tokio::net::{UnixListener, UnixStream};

/// Binds `path` and gives the socket file the permissions `mode` (e.g.
/// `0o600`: only this user may connect).
///
/// A socket file already at `path` is removed first if nothing listens on it
/// (a server that died leaves one behind); if a server does listen, binding
/// fails with `AddrInUse`. Anything at `path` that is not a socket is left
/// alone, and binding fails with `AlreadyExists`.
///
/// # Errors
/// As described, and the file system's errors.
pub(crate) async fn bind(path: &Path, mode: u32) -> io::Result<UnixListener> {
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a server is listening on {}", path.display()),
            ));
        }
        tracing::info!(path = %path.display(), "removing a stale socket file");
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    // The file exists from `bind` on; until this returns it has the
    // permissions the process's umask gives. Restrictive by default.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("sockets-{}-{name}.sock", std::process::id()))
    }

    #[tokio::test]
    async fn a_stale_file_is_replaced_and_a_live_one_is_not() {
        let path = temp_path("stale");
        let _ = std::fs::remove_file(&path);
        let first = bind(&path, 0o600).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Someone listens: refused.
        let live = bind(&path, 0o600).await.unwrap_err();
        assert_eq!(live.kind(), io::ErrorKind::AddrInUse);
        // The listener is gone, its file stays: replaced.
        drop(first);
        let second = bind(&path, 0o660).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        drop(second);
        std::fs::remove_file(&path).unwrap();
        // Not a socket: left alone.
        std::fs::write(&path, b"data").unwrap();
        let error = bind(&path, 0o600).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(&path).unwrap();
    }
}
