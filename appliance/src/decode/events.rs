//! Decoder and stream anomalies, recorded on the packet instead of aborting (Suricata's
//! `decode-event` / `stream-event` names, so rules can match on them).

macro_rules! events {
    ($($var:ident = $name:literal,)*) => {
        /// A protocol anomaly seen while decoding or reassembling a packet.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Event { $($var,)* }

        impl Event {
            pub const ALL: &'static [Event] = &[$(Event::$var,)*];
            /// Suricata's name (`ipv6.frag_overlap`).
            pub fn name(self) -> &'static str {
                match self { $(Event::$var => $name,)* }
            }
            pub fn from_name(s: &str) -> Option<Event> {
                match s { $($name => Some(Event::$var),)* _ => None }
            }
        }
    };
}

events! {
    EthPktTooSmall = "ethernet.pkt_too_small",
    VlanHeaderTooSmall = "vlan.header_too_small",
    VlanTooMany = "vlan.too_many_layers",
    Ipv4PktTooSmall = "ipv4.pkt_too_small",
    Ipv4HlenTooSmall = "ipv4.hlen_too_small",
    Ipv4IplenSmallerThanHlen = "ipv4.iplen_smaller_than_hlen",
    Ipv4TruncPkt = "ipv4.trunc_pkt",
    Ipv4OptInvalidLen = "ipv4.opt_invalid_len",
    Ipv4OptMalformed = "ipv4.opt_malformed",
    Ipv4OptEolRequired = "ipv4.opt_eol_required",
    Ipv4OptDuplicate = "ipv4.opt_duplicate",
    Ipv4OptUnknown = "ipv4.opt_unknown",
    Ipv4WrongIpVersion = "ipv4.wrong_ip_version",
    Ipv4FragPktTooLarge = "ipv4.frag_pkt_too_large",
    Ipv4FragOverlap = "ipv4.frag_overlap",
    Ipv4FragIgnored = "ipv4.frag_ignored",
    Ipv6PktTooSmall = "ipv6.pkt_too_small",
    Ipv6TruncPkt = "ipv6.trunc_pkt",
    Ipv6TruncExthdr = "ipv6.trunc_exthdr",
    Ipv6ExthdrDuplFh = "ipv6.exthdr_dupl_fh",
    Ipv6ExthdrUselessFh = "ipv6.exthdr_useless_fh",
    Ipv6ExthdrDuplRh = "ipv6.exthdr_dupl_rh",
    Ipv6ExthdrDuplHh = "ipv6.exthdr_dupl_hh",
    Ipv6ExthdrDuplDh = "ipv6.exthdr_dupl_dh",
    Ipv6ExthdrInvalidOptlen = "ipv6.exthdr_invalid_optlen",
    Ipv6WrongIpVersion = "ipv6.wrong_ip_version",
    Ipv6ExthdrAhResNotNull = "ipv6.exthdr_ah_res_not_null",
    Ipv6HopoptsUnknownOpt = "ipv6.hopopts_unknown_opt",
    Ipv6HopoptsOnlyPadding = "ipv6.hopopts_only_padding",
    Ipv6DstoptsUnknownOpt = "ipv6.dstopts_unknown_opt",
    Ipv6DstoptsOnlyPadding = "ipv6.dstopts_only_padding",
    Ipv6RhType0 = "ipv6.rh_type_0",
    Ipv6ZeroLenPadn = "ipv6.zero_len_padn",
    Ipv6FhNonZeroReservedField = "ipv6.fh_non_zero_reserved_field",
    Ipv6DataAfterNoneHeader = "ipv6.data_after_none_header",
    Ipv6UnknownNextHeader = "ipv6.unknown_next_header",
    Ipv6Icmpv4 = "ipv6.icmpv4",
    Ipv6FragPktTooLarge = "ipv6.frag_pkt_too_large",
    Ipv6FragOverlap = "ipv6.frag_overlap",
    Ipv6FragInvalidLength = "ipv6.frag_invalid_length",
    Ipv6FragIgnored = "ipv6.frag_ignored",
    Ipv6Ipv4InIpv6TooSmall = "ipv6.ipv4_in_ipv6_too_small",
    Ipv6Ipv4InIpv6WrongVersion = "ipv6.ipv4_in_ipv6_wrong_version",
    Ipv6InIpv6TooSmall = "ipv6.ipv6_in_ipv6_too_small",
    Ipv6InIpv6WrongVersion = "ipv6.ipv6_in_ipv6_wrong_version",
    TcpPktTooSmall = "tcp.pkt_too_small",
    TcpHlenTooSmall = "tcp.hlen_too_small",
    TcpInvalidOptlen = "tcp.invalid_optlen",
    TcpOptInvalidLen = "tcp.opt_invalid_len",
    TcpOptDuplicate = "tcp.opt_duplicate",
    UdpPktTooSmall = "udp.pkt_too_small",
    UdpHlenTooSmall = "udp.hlen_too_small",
    UdpHlenInvalid = "udp.hlen_invalid",
    UdpLenInvalid = "udp.len_invalid",
    Icmpv4PktTooSmall = "icmpv4.pkt_too_small",
    Icmpv4UnknownType = "icmpv4.unknown_type",
    Icmpv4UnknownCode = "icmpv4.unknown_code",
    Icmpv6PktTooSmall = "icmpv6.pkt_too_small",
    Icmpv6UnknownType = "icmpv6.unknown_type",
    Icmpv6UnknownCode = "icmpv6.unknown_code",
    Icmpv6Ipv4 = "icmpv6.ipv6_icmpv4",
    Icmpv6MldMessageWithInvalidHl = "icmpv6.mld_message_with_invalid_hl",
    Icmpv6ExperimentationType = "icmpv6.experimentation_type",
    GrePktTooSmall = "gre.pkt_too_small",
    GreWrongVersion = "gre.wrong_version",
    IpRawInvalidIpv = "ipraw.invalid_ip_version",
    PacketTooLarge = "pkt_too_large",
    StreamReassemblySeqGap = "reassembly_seq_gap",
    StreamReassemblyOverlapDifferentData = "reassembly_overlap_different_data",
    StreamSuspectedRstInject = "suspected_rst_inject",
    StreamPktInvalidTimestamp = "pkt_invalid_timestamp",
    StreamPktRetransmission = "pkt_retransmission",
    StreamPktSpuriousRetransmission = "pkt_spurious_retransmission",
    StreamRstInvalidAck = "rst_invalid_ack",
    Stream3whsSynackWithWrongAck = "3whs_synack_with_wrong_ack",
    StreamPktInvalidAck = "pkt_invalid_ack",
    StreamPacketOutOfWindow = "pkt_broken_ack",
    StreamFinOutOfWindow = "fin_out_of_window",
    StreamEstPacketOutOfWindow = "est_packet_out_of_window",
}

/// A set of events on one packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Events(u128);

impl Events {
    pub fn set(&mut self, e: Event) {
        self.0 |= 1u128 << (e as u8);
    }
    pub fn has(self, e: Event) -> bool {
        self.0 & (1u128 << (e as u8)) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Event> {
        Event::ALL.iter().copied().filter(move |e| self.has(*e))
    }
}

/// Rules name stream events without the `stream.` prefix and decoder events with their
/// layer (`ipv6.frag_overlap`); accept both spellings.
pub fn lookup(name: &str) -> Option<Event> {
    Event::from_name(name).or_else(|| name.strip_prefix("stream.").and_then(Event::from_name))
}
