//! Signed notes (C2SP `signed-note` v1.0.0) with Ed25519, and the tree heads they carry
//! (C2SP `tlog-checkpoint` v1.0.0).
//!
//! A note is text (UTF-8, ending in a newline, no control characters but newlines), a blank
//! line, then one line per signature: `— NAME BASE64(KEY_ID ‖ SIGNATURE)`. The key id is
//! `SHA-256(NAME ‖ 0x0A ‖ 0x01 ‖ PUBLIC_KEY)[:4]` (0x01: Ed25519), the signature is over the
//! text alone. A verifier key is written `NAME+HEX(KEY_ID)+BASE64(0x01 ‖ PUBLIC_KEY)`; a signer
//! key `PRIVATE+KEY+NAME+HEX(KEY_ID)+BASE64(0x01 ‖ SEED)`, as Go's `sumdb/note` writes them.
//! Signatures by keys a verifier does not know (a supervisor's cosignature) are kept and
//! ignored, never an error.
//!
//! A checkpoint's text is the origin line, the tree size in decimal, the base64 root hash, and
//! optional extension lines.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use super::{Hash, HashAlgorithm};

/// The signature type byte of Ed25519 in key ids and keys.
const ED25519: u8 = 0x01;

/// The most signature lines a note may carry (Go's `sumdb/note` bound).
pub const SIGNATURES_MAX: usize = 100;

/// The most bytes of a note read (a checkpoint is a few hundred).
pub const NOTE_BYTES_MAX: usize = 1 << 20;

/// Why a key, a note or a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    MalformedKey(String),
    #[error("malformed note: {0}")]
    MalformedNote(String),
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
    #[error("the note has no signature by key {name}+{key_id}")]
    NotSignedByKey { name: String, key_id: String },
    #[error(
        "the signature by key {name}+{key_id} does not verify: the note was changed or signed by another key"
    )]
    BadSignature { name: String, key_id: String },
}

fn malformed_key(detail: impl Into<String>) -> NoteError {
    NoteError::MalformedKey(detail.into())
}

fn malformed_note(detail: impl Into<String>) -> NoteError {
    NoteError::MalformedNote(detail.into())
}

/// A key name: non-empty, no '+', no whitespace or control characters.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() {
        return Err(malformed_key("a key name is not empty"));
    }
    if name.contains('+') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(malformed_key(format!(
            "key name {name:?} has a '+', a space or a control character"
        )));
    }
    Ok(())
}

/// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let h = HashAlgorithm::Sha256.digest(&[name.as_bytes(), b"\n", &[ED25519], public_key]);
    [h[0], h[1], h[2], h[3]]
}

/// A key that signs notes.
pub struct NoteSigner {
    name: String,
    key_id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "NoteSigner({}+{})", self.name, hex::encode(self.key_id))
    }
}

impl NoteSigner {
    /// The signer of an Ed25519 seed (32 secret bytes, e.g. from the operating system).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_string(),
            key_id,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+NAME+HEX(KEY_ID)+BASE64(0x01 ‖ SEED)`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim_end_matches(['\n', '\r']);
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| malformed_key("a signer key starts with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key(rest)?;
        let bytes = decode_key(key)?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| malformed_key("an Ed25519 seed is 32 bytes"))?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id != id {
            return Err(malformed_key("the key id does not match the name and key"));
        }
        Ok(signer)
    }

    /// The signer key in the form [`NoteSigner::parse`] reads. Secret: keep it in a file of
    /// mode 0600.
    pub fn to_text(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            BASE64.encode(key)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key that checks this signer's signatures.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The signature line of `text` (without its newline).
    fn signature_line(&self, text: &str) -> String {
        let sig = self.key.sign(text.as_bytes());
        let mut bytes = self.key_id.to_vec();
        bytes.extend_from_slice(&sig.to_bytes());
        format!("— {} {}", self.name, BASE64.encode(bytes))
    }

    /// `text` signed: the text, a blank line, this signer's line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        Ok(format!("{text}\n{}\n", self.signature_line(text)))
    }

    /// A signed note with this signer's signature added (a cosignature); the others are kept.
    pub fn cosign(&self, note: &str) -> Result<String, NoteError> {
        let parsed = parse_note(note)?;
        let mut out = format!("{}\n", parsed.text);
        for s in &parsed.signatures {
            out.push_str(s.line);
            out.push('\n');
        }
        out.push_str(&self.signature_line(parsed.text));
        out.push('\n');
        Ok(out)
    }
}

/// A key that checks notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `NAME+HEX(KEY_ID)+BASE64(0x01 ‖ PUBLIC_KEY)`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_key(text.trim())?;
        check_name(name)?;
        let bytes = decode_key(key)?;
        let public: [u8; 32] = bytes
            .try_into()
            .map_err(|_| malformed_key("an Ed25519 public key is 32 bytes"))?;
        if key_id(name, &public) != id {
            return Err(malformed_key("the key id does not match the name and key"));
        }
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|e| malformed_key(format!("not an Ed25519 public key: {e}")))?;
        Ok(Self {
            name: name.to_string(),
            key_id: id,
            key,
        })
    }

    pub fn to_text(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            BASE64.encode(key)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text of `note` if it carries a valid signature by this key. Other signatures are
    /// ignored.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let parsed = parse_note(note)?;
        let id = hex::encode(self.key_id);
        let mine = parsed
            .signatures
            .iter()
            .filter(|s| s.name == self.name && s.key_id == self.key_id)
            .collect::<Vec<_>>();
        if mine.is_empty() {
            return Err(NoteError::NotSignedByKey {
                name: self.name.clone(),
                key_id: id,
            });
        }
        for s in mine {
            let ok = Signature::from_slice(&s.signature)
                .is_ok_and(|sig| self.key.verify(parsed.text.as_bytes(), &sig).is_ok());
            if !ok {
                return Err(NoteError::BadSignature {
                    name: self.name.clone(),
                    key_id: id,
                });
            }
        }
        Ok(parsed.text)
    }
}

fn split_key(text: &str) -> Result<(&str, [u8; 4], &str), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed_key("a key is NAME+KEYID+KEY"));
    };
    if id.len() != 8
        || !id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(malformed_key("a key id is 8 lower-case hex digits"));
    }
    let mut key_id = [0u8; 4];
    hex::decode_to_slice(id, &mut key_id).map_err(|e| malformed_key(e.to_string()))?;
    Ok((name, key_id, key))
}

fn decode_key(text: &str) -> Result<Vec<u8>, NoteError> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| malformed_key(format!("the key is not base64: {e}")))?;
    match bytes.split_first() {
        Some((&ED25519, rest)) => Ok(rest.to_vec()),
        Some((alg, _)) => Err(malformed_key(format!(
            "signature type {alg:#04x} is not Ed25519 (0x01)"
        ))),
        None => Err(malformed_key("the key is empty")),
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(malformed_note(
            "the text is not empty and ends in a newline",
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(malformed_note(
            "the text has a control character other than a newline",
        ));
    }
    Ok(())
}

struct ParsedSignature<'n> {
    name: &'n str,
    key_id: [u8; 4],
    signature: Vec<u8>,
    line: &'n str,
}

struct ParsedNote<'n> {
    text: &'n str,
    signatures: Vec<ParsedSignature<'n>>,
}

fn parse_note(note: &str) -> Result<ParsedNote<'_>, NoteError> {
    if note.len() > NOTE_BYTES_MAX {
        return Err(malformed_note(format!(
            "a note is at most {NOTE_BYTES_MAX} bytes"
        )));
    }
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| malformed_note("no blank line before the signatures"))?;
    let text = &note[..split + 1];
    check_text(text)?;
    let sigs = &note[split + 2..];
    if !sigs.ends_with('\n') {
        return Err(malformed_note("the last signature line ends in a newline"));
    }
    let mut signatures = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        if signatures.len() == SIGNATURES_MAX {
            return Err(malformed_note(format!(
                "more than {SIGNATURES_MAX} signatures"
            )));
        }
        let rest = line
            .strip_prefix("— ")
            .ok_or_else(|| malformed_note(format!("{line:?} is not a signature line")))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| malformed_note(format!("{line:?} is not `— NAME SIGNATURE`")))?;
        check_name(name).map_err(|_| malformed_note(format!("bad key name in {line:?}")))?;
        let bytes = BASE64
            .decode(b64)
            .map_err(|_| malformed_note(format!("{line:?}: the signature is not base64")))?;
        if bytes.len() < 5 {
            return Err(malformed_note(format!(
                "{line:?}: the signature is too short"
            )));
        }
        signatures.push(ParsedSignature {
            name,
            key_id: [bytes[0], bytes[1], bytes[2], bytes[3]],
            signature: bytes[4..].to_vec(),
            line,
        });
    }
    if signatures.is_empty() {
        return Err(malformed_note("a note carries at least one signature"));
    }
    Ok(ParsedNote { text, signatures })
}

/// A tree head, the text of a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Names the log (and here its hash); a verifier keeps the origin it expects.
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
    /// Further lines, kept as they are.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, extension lines, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Parses a checkpoint's text (the note text, without signatures).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |d: &str| NoteError::MalformedCheckpoint(d.to_string());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the text ends in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("the first line names the origin"))?;
        let size_text = lines
            .next()
            .ok_or_else(|| bad("the second line is the tree size"))?;
        if size_text.is_empty()
            || !size_text.bytes().all(|b| b.is_ascii_digit())
            || (size_text.len() > 1 && size_text.starts_with('0'))
        {
            return Err(bad(
                "the tree size is a decimal number without leading zeros",
            ));
        }
        let tree_size: u64 = size_text
            .parse()
            .map_err(|_| bad("the tree size does not fit 64 bits"))?;
        let root_text = lines
            .next()
            .ok_or_else(|| bad("the third line is the root hash"))?;
        let root: Hash = BASE64
            .decode(root_text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("the root hash is 32 bytes of base64"))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("an extension line is not empty"));
        }
        Ok(Self {
            origin: origin.to_string(),
            tree_size,
            root,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Go's golang.org/x/mod/sumdb/note note_test.go: its keys and its signed message.
    const PETER_SIGNER: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VERIFIER: &str =
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VERIFIER: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    #[test]
    fn signs_exactly_as_the_published_vector() {
        let signer = NoteSigner::parse(PETER_SIGNER).unwrap();
        assert_eq!(signer.to_text(), PETER_SIGNER);
        assert_eq!(signer.verifier().to_text(), PETER_VERIFIER);
        // Ed25519 is deterministic: the same bytes as Go's note.Sign.
        assert_eq!(signer.sign(TEXT).unwrap(), format!("{TEXT}\n{PETER_SIG}"));
    }

    #[test]
    fn opens_with_its_key_and_ignores_unknown_cosignatures() {
        let peter = NoteVerifier::parse(PETER_VERIFIER).unwrap();
        let enoch = NoteVerifier::parse(ENOCH_VERIFIER).unwrap();
        let note = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        assert_eq!(peter.open(&note).unwrap(), TEXT);
        assert_eq!(enoch.open(&note).unwrap(), TEXT);
        // Only Enoch's signature: Peter's key finds none.
        let only_enoch = format!("{TEXT}\n{ENOCH_SIG}");
        assert!(matches!(
            peter.open(&only_enoch),
            Err(NoteError::NotSignedByKey { .. })
        ));
        // A changed text or signature fails.
        let changed = note.replacen("cryptography", "cryptographY", 1);
        assert!(matches!(
            peter.open(&changed),
            Err(NoteError::BadSignature { .. })
        ));
        let sig_changed = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(peter.open(&sig_changed).is_err());
    }

    #[test]
    fn refuses_malformed_notes_as_go_does() {
        let peter = NoteVerifier::parse(PETER_VERIFIER).unwrap();
        for bad in [
            TEXT.to_string(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\x01{TEXT}\n{PETER_SIG}"),
            format!(
                "{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
            ),
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
            format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
        ] {
            assert!(peter.open(&bad).is_err(), "opened {bad:?}");
        }
    }

    #[test]
    fn refuses_mangled_keys() {
        let b = PETER_VERIFIER.as_bytes();
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            if let Ok(s) = std::str::from_utf8(&m) {
                assert!(NoteVerifier::parse(s).is_err(), "accepted {s}");
            }
        }
        for end in 1..b.len() {
            if let Ok(s) = std::str::from_utf8(&b[..end]) {
                assert!(NoteVerifier::parse(s).is_err(), "accepted {s}");
            }
        }
        // Unknown algorithm, with an adjusted key hash (Go's vector).
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
        assert!(NoteSigner::parse(&PETER_SIGNER[1..]).is_err());
    }

    #[test]
    fn a_checkpoint_round_trips_and_a_cosignature_keeps_the_first() {
        let cp = Checkpoint {
            origin: "carelog.example/qingyang sha256 0123abcd".into(),
            tree_size: 221_677,
            root: [7u8; 32],
            extensions: vec!["extra line".into()],
        };
        let text = cp.to_text();
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
        let store = NoteSigner::from_seed("carelog-store", [1u8; 32]).unwrap();
        let supervisor = NoteSigner::from_seed("supervisor", [2u8; 32]).unwrap();
        let signed = store.sign(&text).unwrap();
        let both = supervisor.cosign(&signed).unwrap();
        assert_eq!(store.verifier().open(&both).unwrap(), text);
        assert_eq!(supervisor.verifier().open(&both).unwrap(), text);
        for bad in [
            "origin\n012\nAAAA\n",
            "origin\n12\n",
            "\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "origin\n-1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "origin\n1\nBwcH\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "parsed {bad:?}");
        }
    }
}
