//! Making hostile names safe on a terminal: file names may hold newlines, escape sequences or
//! bytes that are not UTF-8. Escaping is reversible (`\\` for a backslash), like `ls -b`.

/// Escapes control characters, backslashes and invalid UTF-8 (as `\xNN`).
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

pub fn escape_str(s: &str) -> String {
    escape_bytes(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_escaped_reversibly() {
        assert_eq!(escape_bytes(b"/tmp/plain.txt"), "/tmp/plain.txt");
        assert_eq!(escape_bytes(b"/tmp/new\nline"), "/tmp/new\\nline");
        assert_eq!(escape_bytes(b"/tmp/\x1b[31mred"), "/tmp/\\x1b[31mred");
        assert_eq!(escape_bytes(b"/tmp/bad\xff\xfe"), "/tmp/bad\\xff\\xfe");
        assert_eq!(
            escape_bytes(b"a\\xff"),
            "a\\\\xff",
            "a literal backslash cannot pass for an escape"
        );
        assert_eq!(escape_bytes("/tmp/caf\u{e9}".as_bytes()), "/tmp/caf\u{e9}");
        assert_eq!(escape_bytes("\u{85}".as_bytes()), "\\xc2\\x85", "C1 controls too");
    }
}
