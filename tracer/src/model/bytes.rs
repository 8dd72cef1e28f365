//! Raw bytes in the report (command names, paths): UTF-8 text where they are, with a lossless
//! hex copy where they are not.

/// Text as UTF-8 where it is, with a lossless hex copy where it is not.
pub fn text_and_hex(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    }
}
