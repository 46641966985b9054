//! Hard limits of the wire format.
//!
//! Every length a peer controls is capped here. The encoder refuses to send a message over a
//! limit and the decoder refuses to accept one, so both ends agree on what is valid. Raising a
//! limit that the other end enforces needs a protocol version bump.

/// Size of the big-endian length prefix in front of every frame.
pub const HEADER_LEN: usize = 4;

/// Largest frame body (postcard bytes, without the prefix) either end sends or accepts: 1 MiB.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Most unconsumed bytes a [`FrameDecoder`](crate::frame::FrameDecoder) buffers: one partial
/// frame plus one read of up to a frame's size.
pub const MAX_BUFFERED: usize = 2 * (HEADER_LEN + MAX_FRAME_LEN);

/// Most events in one `Events` batch. The uplink also splits batches whose encoding would exceed
/// [`MAX_FRAME_LEN`].
pub const MAX_EVENTS_PER_BATCH: usize = 512;

/// Most counters in one heartbeat.
pub const MAX_COUNTERS: usize = 256;

/// Most rule-metadata pairs carried with one alert.
pub const MAX_METADATA: usize = 32;

/// Most (category, app) rows in one traffic summary.
pub const MAX_TRAFFIC_ENTRIES: usize = 256;

/// Most allowed destinations of an isolated host.
pub const MAX_ALLOW_RULES: usize = 64;

/// Bound of short identifiers: category, app, classtype, counter and metadata names, versions,
/// device ids. Bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;

/// Bound of a metadata value, e.g. `Major` or `Client_Endpoint`.
pub const MAX_META_VALUE_LEN: usize = 128;

/// Bound of a DNS name, SNI or URL host (the DNS limit).
pub const MAX_HOST_LEN: usize = 253;

/// Bound of a URL path (query string already dropped).
pub const MAX_PATH_LEN: usize = 2048;

/// Bound of a file name.
pub const MAX_FILE_NAME_LEN: usize = 255;

/// Bound of free text: rule messages, threat names, command results, refusal reasons.
pub const MAX_TEXT_LEN: usize = 512;

/// Width of a traffic-summary bucket in seconds (10 minutes); bucket starts are multiples of it.
pub const TRAFFIC_BUCKET_SECS: u64 = 600;

/// Most bytes of a rule bundle in one `BundleChunk` (version 2).
pub const MAX_BUNDLE_CHUNK: usize = 512 * 1024;
