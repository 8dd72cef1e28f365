//! CPython's location table (3.11-3.14, `Objects/locations.md`): the line of an instruction.
//!
//! Each entry starts with a byte `1cccclll`: code `cccc`, `lll + 1` code units (2 bytes each)
//! covered. Codes 0-9: same line, one column byte; 10-12: line delta `code - 10`, two column
//! bytes; 13: line delta (signed varint), no columns; 14: line delta (signed varint), end-line
//! delta, start and end column (varints); 15: no location. Varints are 6-bit chunks,
//! little-endian, bit 6 set on all but the last; a signed varint keeps the sign in bit 0.

/// The line of the instruction at byte offset `offset` (as `PyCode_Addr2Line`): `None` for an
/// instruction without location (code 15) or an offset past the table.
pub fn addr2line(table: &[u8], firstlineno: i32, offset: u32) -> Option<i32> {
    if offset >= u32::MAX / 2 {
        return None;
    }
    let mut line = firstlineno;
    let mut end: u32 = 0;
    let mut i = 0;
    while i < table.len() {
        let head = table[i];
        if head & 0x80 == 0 {
            // Not at an entry start: a corrupt table.
            return None;
        }
        let code = (head >> 3) & 15;
        let start = end;
        end = end.saturating_add((u32::from(head & 7) + 1) * 2);
        let delta = match code {
            13 | 14 => signed_varint(table, i + 1),
            10..=12 => i32::from(code) - 10,
            _ => 0,
        };
        line = line.wrapping_add(delta);
        if (start..end).contains(&offset) {
            return (code != 15).then_some(line);
        }
        i += 1;
        while i < table.len() && table[i] & 0x80 == 0 {
            i += 1;
        }
    }
    None
}

fn signed_varint(table: &[u8], at: usize) -> i32 {
    let v = varint(table, at);
    if v & 1 != 0 {
        -((v >> 1) as i32)
    } else {
        (v >> 1) as i32
    }
}

fn varint(table: &[u8], mut at: usize) -> u32 {
    let mut value: u32 = 0;
    let mut shift = 0;
    while let Some(&b) = table.get(at) {
        value |= u32::from(b & 63).checked_shl(shift).unwrap_or(0);
        if b & 64 == 0 {
            break;
        }
        shift += 6;
        at += 1;
    }
    value
}
