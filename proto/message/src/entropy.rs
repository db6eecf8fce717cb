//! The operating system's random generator, as the services pass it.
//!
//! Every function of this crate that needs randomness takes a generator. Passing
//! [`SystemEntropy`] rather than another generator says that the randomness may
//! come from the operating system by any route; the key exchange uses that to run
//! ML-KEM in aws-lc, which draws from the operating system itself (kem.rs). Any
//! other generator is used for every random byte, as the test vectors require.

use core::convert::Infallible;

use rand_core::{Rng, TryCryptoRng, TryRng, UnwrapErr};

/// The operating system's generator (`getrandom`). A failure of the operating
/// system's generator is not recoverable and aborts the calling thread, as
/// `getrandom`'s own infallible wrapper does.
#[derive(Default)]
pub struct SystemEntropy(UnwrapErr<getrandom::SysRng>);

impl SystemEntropy {
    /// The generator.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TryRng for SystemEntropy {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl TryCryptoRng for SystemEntropy {}
