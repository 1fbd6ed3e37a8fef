//! [`ExpectedVersion`]: what a caller expects of a stream before its events are appended
//! (optimistic concurrency). Its own module because both sides of the boundary use it: the
//! wire format parses it (`domain::cloudevent`, the `expectedversion` extension) and the log's
//! writer checks it at commit time; neither may know the other.

/// What the caller expects of a stream before its batch is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectedVersion {
    /// No expectation.
    #[default]
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version (its last event's stream version).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at version `actual` (0: no such stream) meets the expectation.
    pub fn holds(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => write!(f, "any version"),
            ExpectedVersion::NoStream => write!(f, "no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}
