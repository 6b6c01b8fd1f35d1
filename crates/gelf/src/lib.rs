//! GELF 1.1: encoding, compression, UDP chunking and reassembly.
//!
//! Pure codec: no sockets and no runtime, so every piece can be tested byte for byte and fuzzed.
//! The agent encodes with [`Encoder`] and frames with [`Chunker`] (UDP) or a trailing NUL (TCP);
//! the tests decode with [`Reassembler`] and [`decompress`].

mod chunk;
mod compress;
mod deflate;
mod encode;
mod json;
mod udp;

pub use chunk::Datagrams;
pub use chunk::{
    Chunker, ReassembleError, Reassembler, CHUNK_HEADER_LEN, CHUNK_MAGIC, MAX_CHUNKS, MAX_MESSAGE_OVERHEAD,
};
pub use compress::{decompress, Compression, Compressor, DecompressError};
pub use deflate::Deflater;
pub use encode::{is_name_byte, write_message, Encoder, FieldError, Fields, Message};
pub use udp::{cut_to_fit, UdpEncoder};
