use super::*;
use crate::ast::*;

fn parse(s: &str) -> Result<Rule, RuleError> {
    ParseCtx::default().parse_rule(s, "t.rules", 7)
}

#[test]
fn parses_a_typical_et_rule() {
    let r = parse(r#"alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ET TEST"; flow:established,to_server; content:"GET"; depth:3; content:"/x.php"; distance:0; within:20; nocase; pcre:"/a\x3bb/i"; classtype:trojan-activity; sid:2000001; rev:3; metadata:signature_severity Major, confidence High;)"#).unwrap();
    assert_eq!(r.sid, 2000001);
    assert_eq!(r.rev, 3);
    assert!(r.flow.established && r.flow.to_server);
    assert_eq!(r.programs.len(), 1);
    assert_eq!(r.programs[0].steps.len(), 3);
    match &r.programs[0].steps[1] {
        Step::Content(c) => {
            assert!(c.nocase);
            assert_eq!(c.within, Some(Val::Lit(20)));
        }
        s => panic!("{s:?}"),
    }
    assert_eq!(r.metadata[1], ("confidence".to_string(), "High".to_string()));
}

#[test]
fn legacy_modifier_moves_content() {
    let r = parse(r#"alert http any any -> any any (content:"GET"; http_method; content:"/a"; http_uri; sid:1;)"#).unwrap();
    let bufs: Vec<Buffer> = r.programs.iter().map(|p| p.buffer).collect();
    assert_eq!(bufs, vec![Buffer::HttpMethod, Buffer::HttpUri]);
}

#[test]
fn errors_name_location_sid_and_keyword() {
    let e = parse(r#"alert tcp any any -> any any (msg:"x"; dotprefix; content:"a"; sid:42;)"#).unwrap_err();
    assert_eq!(e.sid, Some(42));
    assert_eq!(e.kind, ErrorKind::Unsupported("dotprefix".into()));
    assert_eq!(e.to_string(), "t.rules:7: sid 42: unsupported keyword `dotprefix`");
    let e = parse(r#"alert tcp any any -> any any (content:"a"; depth:x; sid:5;)"#).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::BadValue { ref keyword, .. } if keyword == "depth"));
    assert!(parse(r#"alert tcp any any -> any any (content:"a";)"#).unwrap_err().kind == ErrorKind::NoSid);
    assert!(matches!(parse(r#"alert foo any any -> any any (sid:1;)"#).unwrap_err().kind, ErrorKind::Protocol(_)));
    assert!(matches!(parse(r#"alert tcp $NOPE any -> any any (sid:1;)"#).unwrap_err().kind, ErrorKind::Address(_)));
}

#[test]
fn one_bad_rule_does_not_stop_the_rest() {
    let text = "alert tcp any any -> any any (sid:1;)\n# alert tcp any any -> any any (sid:9;)\nalert tcp any any -> any any (bogus; sid:2;)\n\nalert udp any any -> any any (msg:\"multi\"; \\\n  sid:3;)\nalert tcp any any -> any any (sid:1;)\n";
    let mut ctx = ParseCtx::default();
    let mut rep = LoadReport::default();
    load_text(text, "f.rules", &mut ctx, &mut rep);
    assert_eq!(rep.enabled, 4);
    assert_eq!(rep.rules.iter().map(|r| r.sid).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(rep.failures.len(), 2);
    assert_eq!(rep.failures[0].line, 3);
    assert_eq!(rep.failures[1].kind, ErrorKind::DuplicateSid(1));
}

#[test]
fn payload_keywords() {
    let r = parse(r#"alert tcp any any -> any any (content:"ab"; byte_extract:2,0,len,relative; byte_test:1,>,len,0,relative,string,dec; byte_jump:2,0,relative,little,post_offset -1; isdataat:!3,relative; content:"z"; startswith; sid:7;)"#).unwrap();
    assert_eq!(r.nvars, 1);
    let steps = &r.programs[0].steps;
    assert!(matches!(steps[2], Step::ByteTest(ByteTest { value: Val::Var(0), enc: NumEncoding::String(10), .. })));
    assert!(matches!(steps[3], Step::ByteJump(ByteJump { post_offset: -1, enc: NumEncoding::Little, nbytes: Val::Lit(2), .. })));
    assert!(matches!(steps[4], Step::IsDataAt { negated: true, relative: true, .. }));
    assert!(matches!(&steps[5], Step::Content(c) if c.depth == Some(Val::Lit(1))));
    assert!(parse(r#"alert tcp any any -> any any (byte_test:9,=,1,0; sid:8;)"#).is_err());
}

#[test]
fn thresholds_flowbits_flags() {
    let r = parse(r#"alert tcp any any -> any any (flags:S,12; flowbits:isset,a|b; flowbits:noalert; threshold: type limit, track by_src, count 1, seconds 60; dsize:>10; sid:9;)"#).unwrap();
    assert!(r.noalert);
    assert!(matches!(r.flowbits[0], FlowbitCmd::IsSet { any: true, .. }));
    assert_eq!(r.threshold.unwrap().kind, ThresholdKind::Limit);
    assert_eq!(r.packet_tests[0], PacketTest::TcpFlags(TcpFlagsTest { flags: 0x02, modifier: FlagsModifier::Exact, mask: 0xc0 }));
    assert_eq!(r.packet_tests[1], PacketTest::Dsize(NumCmp::Gt(10)));
}
