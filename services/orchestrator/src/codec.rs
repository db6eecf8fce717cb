//! The gRPC codec of the orchestrator's services: prost, with buffers sized for
//! this protocol's messages.
//!
//! tonic gives every stream three 8 KiB buffers (one to decode, two to encode)
//! for as long as it is open. An agent's channel is a stream that stays open and
//! idle, and its frames are under 2 KiB (the largest, an acknowledgement, carries
//! an ML-KEM-768 key of 1,184 bytes), so a fleet of channels would hold 24 KiB
//! each for nothing (docs/performance.md). Larger messages still fit: a buffer
//! grows when a message needs it.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

/// Initial size of each buffer of a stream.
const BUFFER: usize = 2 * 1024;
/// Encoded bytes after which a streaming response yields (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// Prost encoding with [`BUFFER`]-sized stream buffers; named by build.rs as the
/// codec of every generated service.
#[derive(Debug, Clone)]
pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(BUFFER, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(BUFFER, YIELD_THRESHOLD))
    }
}
