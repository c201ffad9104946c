//! Entry path rules. One function decides what a safe entry path is, and both the writer
//! (refuses to create a bad bundle) and the reader (refuses a hostile one) call it.

/// Longest entry path accepted. Generous for real content, small enough to bound memory.
pub const MAX_PATH_LEN: usize = 1024;

/// Checks that `path` is a relative, normalised, portable entry path: no leading `/`, no
/// `.`/`..`/empty components, no NUL, no backslash, no trailing slash.
pub fn check_entry_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("path longer than {MAX_PATH_LEN} bytes"));
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    if path.contains('\0') || path.contains('\\') {
        return Err("path contains NUL or backslash".into());
    }
    for comp in path.split('/') {
        match comp {
            "" => return Err("empty path component (// or trailing /)".into()),
            "." => return Err("'.' component".into()),
            ".." => return Err("'..' component escapes the target".into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_paths() {
        assert!(check_entry_path("oci/blobs/sha256/abc").is_ok());
        assert!(check_entry_path("files/a b/c.tar.zst").is_ok());
        assert!(check_entry_path("..hidden").is_ok());
    }

    #[test]
    fn refuses_escapes() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a/",
            "a\\..\\b",
            "a\0b",
        ] {
            assert!(check_entry_path(p).is_err(), "{p:?} accepted");
        }
    }
}
