//! The smallest JSON writer GELF needs: escaped strings. Numbers are written by the callers.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` to `out` as a JSON string literal, quotes included.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::write_str;

    #[test]
    fn escapes_round_trip_through_a_real_parser() {
        for s in ["", "plain", "q\"uote", "back\\slash", "nl\ncr\rtab\t", "\u{0}\u{1f}\u{7f}", "ünï©ødé ✓"] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            let parsed: String = serde_json::from_slice(&out).expect("valid JSON string");
            assert_eq!(parsed, s);
        }
    }

    #[test]
    fn control_characters_use_unicode_escapes() {
        let mut out = Vec::new();
        write_str(&mut out, "a\u{1}b");
        assert_eq!(out, b"\"a\\u0001b\"");
    }
}
