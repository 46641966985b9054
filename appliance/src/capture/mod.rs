//! Where frames come from. Offline: pcap and pcapng files (`pcap`). The live bridge's
//! AF_PACKET ports come with the inline work.

pub mod pcap;
