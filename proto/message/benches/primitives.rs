//! Cost of each primitive the protocol uses, as this machine runs it.
//! `cargo bench -p pqescape-message --bench primitives`
#![allow(missing_docs, clippy::unwrap_used)]

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit};
use criterion::{Criterion, criterion_group, criterion_main};
use ml_kem::{Decapsulate, Encapsulate, Generate, MlKem768, MlKem1024};
use pqescape_message::schedule::{EscapeKeys, mac};
use pqescape_message::secret::SecretKey;
use pqescape_message::sign::{OrchestratorSigningKey, context};
use pqescape_message::types::{ConsumerId, KeyMode};
use rand_core::UnwrapErr;
use std::hint::black_box;
use x25519_dalek::{EphemeralSecret, PublicKey};

fn mlkem(c: &mut Criterion) {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let dk = ml_kem::DecapsulationKey::<MlKem768>::generate_from_rng(&mut rng);
    let ek = dk.encapsulation_key().clone();
    let (ct, _) = ek.encapsulate_with_rng(&mut rng);
    c.bench_function("ml-kem-768 keygen (RustCrypto)", |b| {
        b.iter(|| ml_kem::DecapsulationKey::<MlKem768>::generate_from_rng(&mut rng))
    });
    c.bench_function("ml-kem-768 encaps (RustCrypto)", |b| {
        b.iter(|| ek.encapsulate_with_rng(&mut rng))
    });
    c.bench_function("ml-kem-768 decaps (RustCrypto)", |b| {
        b.iter(|| dk.decapsulate(black_box(&ct)))
    });
    let dk = ml_kem::DecapsulationKey::<MlKem1024>::generate_from_rng(&mut rng);
    let ek = dk.encapsulation_key().clone();
    c.bench_function("ml-kem-1024 encaps (RustCrypto)", |b| {
        b.iter(|| ek.encapsulate_with_rng(&mut rng))
    });
}

/// The implementation the services run (kem.rs).
fn mlkem_aws_lc(c: &mut Criterion) {
    use aws_lc_rs::kem::{DecapsulationKey, ML_KEM_768};
    let dk = DecapsulationKey::generate(&ML_KEM_768).unwrap();
    let ek = dk.encapsulation_key().unwrap();
    let (ct, _) = ek.encapsulate().unwrap();
    c.bench_function("ml-kem-768 keygen (aws-lc)", |b| {
        b.iter(|| DecapsulationKey::generate(&ML_KEM_768).unwrap())
    });
    c.bench_function("ml-kem-768 encaps (aws-lc)", |b| b.iter(|| ek.encapsulate().unwrap()));
    c.bench_function("ml-kem-768 decaps (aws-lc)", |b| {
        b.iter(|| dk.decapsulate(black_box(ct.as_ref()).into()).unwrap())
    });
}

fn x25519(c: &mut Criterion) {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let peer = PublicKey::from(&EphemeralSecret::random_from_rng(&mut rng));
    c.bench_function("x25519 keygen+dh (x25519-dalek)", |b| {
        b.iter(|| EphemeralSecret::random_from_rng(&mut rng).diffie_hellman(black_box(&peer)))
    });
    use aws_lc_rs::agreement::{PrivateKey, UnparsedPublicKey, X25519, agree};
    let peer = *peer.as_bytes();
    c.bench_function("x25519 keygen+dh (aws-lc)", |b| {
        b.iter(|| {
            let key = PrivateKey::generate(&X25519).unwrap();
            let public = key.compute_public_key().unwrap();
            let peer = UnparsedPublicKey::new(&X25519, black_box(peer));
            agree(&key, peer, (), |s| Ok(s.len() + public.as_ref().len())).unwrap()
        })
    });
}

fn mldsa(c: &mut Criterion) {
    let key = OrchestratorSigningKey::from_seed(&[7; 32]);
    let vk = key.verifying_key();
    let msg = [0x42u8; 32];
    let sig = key.sign(&msg, context::MANIFEST).unwrap();
    c.bench_function("ml-dsa-65 sign", |b| b.iter(|| key.sign(black_box(&msg), context::MANIFEST)));
    c.bench_function("ml-dsa-65 verify", |b| {
        b.iter(|| vk.verify(black_box(&msg), context::MANIFEST, &sig).unwrap())
    });
}

fn symmetric(c: &mut Criterion) {
    let key = SecretKey::from_bytes([1; 32]);
    let data = [0u8; 256];
    c.bench_function("hmac-sha256 256 B", |b| b.iter(|| mac(&key, &[black_box(&data)])));
    c.bench_function("escape key schedule (5 HKDF expands)", |b| {
        b.iter(|| EscapeKeys::derive(&key, ConsumerId([1; 16]), 1, KeyMode::DedicatedPsk))
    });
    let aead = ChaCha20Poly1305::new(key.expose().into());
    c.bench_function("chacha20poly1305 seal 512 B", |b| {
        b.iter(|| aead.encrypt(&[0u8; 12].into(), black_box(&[0u8; 512][..])).unwrap())
    });
}

criterion_group!(benches, mlkem, mlkem_aws_lc, x25519, mldsa, symmetric);
criterion_main!(benches);
