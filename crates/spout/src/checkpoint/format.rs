//! A checkpoint's format: one line, a magic word with the format's version, the position
//! in the terms of where it was read from, and a checksum of everything before it.
//!
//! - version 2: `spout-checkpoint 2 api TS COUNT MAX_TS SUM` or
//!   `spout-checkpoint 2 file DEV INO FINGERPRINT OFFSET TS SUM`;
//! - version 1 (spout before reading files): `spout-checkpoint 1 TS COUNT MAX_TS SUM`, read as
//!   an API position, never discarded.

use crate::fnv::fnv1a;
use crate::position::{ApiPosition, FileId, FilePosition, Position};

/// Why a checkpoint file was not used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a spout checkpoint")]
    Format,
    #[error("checksum mismatch (torn or corrupt file)")]
    Checksum,
}

const MAGIC: &str = "spout-checkpoint";
/// The version written.
const VERSION: u32 = 2;

pub fn encode(pos: Position) -> String {
    let body = match pos {
        Position::Api(p) => format!("{MAGIC} {VERSION} api {} {} {}", p.ts_ns, p.count, p.max_ts_ns),
        Position::File(p) => format!(
            "{MAGIC} {VERSION} file {} {} {:016x} {} {}",
            p.file.dev, p.file.ino, p.file.fingerprint, p.offset, p.ts_ns
        ),
    };
    format!("{body} {:016x}\n", fnv1a(body.as_bytes()))
}

pub fn decode(text: &str) -> Result<Position, CheckpointError> {
    let line = text.strip_suffix('\n').ok_or(CheckpointError::Format)?;
    let (body, sum) = line.rsplit_once(' ').ok_or(CheckpointError::Format)?;
    let sum = u64::from_str_radix(sum, 16).map_err(|_| CheckpointError::Format)?;
    let rest = body.strip_prefix(MAGIC).and_then(|r| r.strip_prefix(' ')).ok_or(CheckpointError::Format)?;
    if fnv1a(body.as_bytes()) != sum {
        return Err(CheckpointError::Checksum);
    }
    let mut fields = rest.split(' ');
    let position = match fields.next() {
        Some("1") => Position::Api(api(&mut fields)?),
        Some("2") => match fields.next() {
            Some("api") => Position::Api(api(&mut fields)?),
            Some("file") => {
                let file = FileId {
                    dev: number(&mut fields)?,
                    ino: number(&mut fields)?,
                    fingerprint: fields
                        .next()
                        .and_then(|f| u64::from_str_radix(f, 16).ok())
                        .ok_or(CheckpointError::Format)?,
                };
                Position::File(FilePosition { file, offset: number(&mut fields)?, ts_ns: number(&mut fields)? })
            }
            _ => return Err(CheckpointError::Format),
        },
        _ => return Err(CheckpointError::Format),
    };
    if fields.next().is_some() {
        return Err(CheckpointError::Format);
    }
    Ok(position)
}

fn api<'a>(fields: &mut impl Iterator<Item = &'a str>) -> Result<ApiPosition, CheckpointError> {
    Ok(ApiPosition { ts_ns: number(fields)?, count: number(fields)?, max_ts_ns: number(fields)? })
}

fn number<'a, T: std::str::FromStr>(fields: &mut impl Iterator<Item = &'a str>) -> Result<T, CheckpointError> {
    fields.next().and_then(|f| f.parse().ok()).ok_or(CheckpointError::Format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_round_trip_and_corruption_is_detected() {
        let api = Position::Api(ApiPosition {
            ts_ns: 1_795_984_225_804_920_384,
            count: 3,
            max_ts_ns: 1_795_984_225_900_000_000,
        });
        let file = Position::File(FilePosition {
            file: FileId { dev: 2049, ino: 1_234_567, fingerprint: 0xdead_beef_0000_0001 },
            offset: 10_485_760,
            ts_ns: 1_795_984_225_804_920_384,
        });
        for p in [api, file, Position::START] {
            let text = encode(p);
            assert!(text.starts_with("spout-checkpoint 2 "), "{text}");
            assert_eq!(decode(&text), Ok(p));
            assert_eq!(decode(&text.replacen(" 2 ", " 3 ", 1)), Err(CheckpointError::Checksum), "{text}");
            assert_eq!(decode(&text[..text.len() / 2]), Err(CheckpointError::Format));
        }
        assert_eq!(decode(""), Err(CheckpointError::Format));
        assert_eq!(decode("garbage\n"), Err(CheckpointError::Format));
    }

    #[test]
    fn a_version_1_checkpoint_reads_as_the_api_position_it_was() {
        // As spout wrote them before it read files (its encode, verbatim).
        let body = "spout-checkpoint 1 1795984225804920384 3 1795984225900000000";
        let text = format!("{body} {:016x}\n", fnv1a(body.as_bytes()));
        let expected = ApiPosition { ts_ns: 1_795_984_225_804_920_384, count: 3, max_ts_ns: 1_795_984_225_900_000_000 };
        assert_eq!(decode(&text), Ok(Position::Api(expected)));
        assert_eq!(decode(&text.replace(" 3 ", " 4 ")), Err(CheckpointError::Checksum));
    }
}
