// What the dashboard knows about suites, states and reason codes, in words an
// operator reads at a glance.

export const SUITES = [
  { name: 'x25519-mlkem768', label: 'X25519 + ML-KEM-768', pq: true },
  { name: 'x25519-mlkem1024', label: 'X25519 + ML-KEM-1024', pq: true },
];

export function isPostQuantum(suite) {
  return suite !== 'classical' && suite !== undefined && suite !== null;
}

export function suiteLabel(suite) {
  return SUITES.find((s) => s.name === suite)?.label ?? (suite === 'classical' ? 'Classical' : suite);
}

/** Delivery states in the order a delivery moves through them. */
export const OPEN_STATES = ['pending', 'sent', 'acknowledged', 'negotiating'];
export const END_STATES = ['migrated', 'drill_passed', 'failed', 'expired'];
export const DELIVERY_STATES = [...OPEN_STATES, ...END_STATES];

/** What an agent's reason name means, for the failures table. */
const REASONS = {
  malformed: 'the escape did not parse on the agent',
  integrity: 'the MAC did not verify: wrong PSK or a tampered message',
  wrong_consumer: 'the escape was addressed to another consumer',
  wrong_campaign: 'the escape does not match its campaign',
  unknown_key_id: 'the agent holds no PSK with this key id',
  replay: 'the sequence number is not above the last one the agent accepted',
  sequence_too_far_ahead: 'the sequence number jumps too far ahead',
  not_yet_valid: 'the escape is not valid yet: check the clocks',
  expired: 'the escape had expired when the agent checked it',
  bad_validity_window: 'the validity window is inconsistent',
  downgrade: 'the consumer already runs a stronger suite and refuses to go down',
  exporter_mode_refused: 'the agent refuses the TLS-exporter key mode',
  manifest_required: 'the agent requires a signed campaign manifest',
  manifest_mismatch: 'the signed manifest does not match the escape',
  untrusted_signer: 'the manifest was not signed by the pinned orchestrator key',
  signature_required: 'the agent requires signed handshakes',
  suite_mismatch: 'the handshake used another suite than the escape',
  transcript_mismatch: 'the handshake transcript did not match',
  weak_shared_secret: 'a key exchange produced a weak shared secret',
};

/** Splits "0x0030: downgrade" into its code, name and explanation. */
export function explainReason(reason, state) {
  if (!reason) {
    return state === 'expired'
      ? { code: '', name: 'deadline', text: 'the deadline passed before the agent finished' }
      : { code: '', name: 'unknown', text: 'no reason was reported' };
  }
  const match = reason.match(/^(0x[0-9a-f]+):\s*(.*)$/i);
  const [code, name] = match ? [match[1], match[2]] : ['', reason];
  return { code, name, text: REASONS[name] ?? name.replaceAll('_', ' ') };
}
