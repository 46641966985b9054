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
    assert_eq!(
        r.metadata[1],
        ("confidence".to_string(), "High".to_string())
    );
}

#[test]
fn legacy_modifier_moves_content() {
    let r = parse(r#"alert http any any -> any any (content:"GET"; http_method; content:"/a"; http_uri; sid:1;)"#).unwrap();
    let bufs: Vec<Buffer> = r.programs.iter().map(|p| p.buffer).collect();
    assert_eq!(bufs, vec![Buffer::HttpMethod, Buffer::HttpUri]);
}

#[test]
fn errors_name_location_sid_and_keyword() {
    let e = parse(r#"alert tcp any any -> any any (msg:"x"; ftpbounce; content:"a"; sid:42;)"#)
        .unwrap_err();
    assert_eq!(e.sid, Some(42));
    assert_eq!(e.kind, ErrorKind::Unsupported("ftpbounce".into()));
    assert_eq!(
        e.to_string(),
        "t.rules:7: sid 42: unsupported keyword `ftpbounce`"
    );
    let e = parse(r#"alert tcp any any -> any any (content:"a"; depth:x; sid:5;)"#).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::BadValue { ref keyword, .. } if keyword == "depth"));
    assert!(
        parse(r#"alert tcp any any -> any any (content:"a";)"#)
            .unwrap_err()
            .kind
            == ErrorKind::NoSid
    );
    assert!(matches!(
        parse(r#"alert foo any any -> any any (sid:1;)"#)
            .unwrap_err()
            .kind,
        ErrorKind::Protocol(_)
    ));
    assert!(matches!(
        parse(r#"alert tcp $NOPE any -> any any (sid:1;)"#)
            .unwrap_err()
            .kind,
        ErrorKind::Address(_)
    ));
}

#[test]
fn one_bad_rule_does_not_stop_the_rest() {
    let text = "alert tcp any any -> any any (sid:1;)\n# alert tcp any any -> any any (sid:9;)\nalert tcp any any -> any any (bogus; sid:2;)\n\nalert udp any any -> any any (msg:\"multi\"; \\\n  sid:3;)\nalert tcp any any -> any any (sid:1;)\n";
    let mut ctx = ParseCtx::default();
    let mut rep = LoadReport::default();
    load_text(text, "f.rules", &mut ctx, &mut rep);
    assert_eq!(rep.enabled, 4);
    assert_eq!(
        rep.rules.iter().map(|r| r.sid).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(rep.failures.len(), 2);
    assert_eq!(rep.failures[0].line, 3);
    assert_eq!(rep.failures[1].kind, ErrorKind::DuplicateSid(1));
}

#[test]
fn payload_keywords() {
    let r = parse(r#"alert tcp any any -> any any (content:"ab"; byte_extract:2,0,len,relative; byte_test:1,>,len,0,relative,string,dec; byte_jump:2,0,relative,little,post_offset -1; isdataat:!3,relative; content:"z"; startswith; sid:7;)"#).unwrap();
    assert_eq!(r.nvars, 1);
    let steps = &r.programs[0].steps;
    assert!(matches!(
        steps[2],
        Step::ByteTest(ByteTest {
            value: Val::Var(0),
            enc: NumEncoding::String(10),
            ..
        })
    ));
    assert!(matches!(
        steps[3],
        Step::ByteJump(ByteJump {
            post_offset: -1,
            enc: NumEncoding::Little,
            nbytes: Val::Lit(2),
            ..
        })
    ));
    assert!(matches!(
        steps[4],
        Step::IsDataAt {
            negated: true,
            relative: true,
            ..
        }
    ));
    assert!(matches!(&steps[5], Step::Content(c) if c.depth == Some(Val::Lit(1))));
    assert!(parse(r#"alert tcp any any -> any any (byte_test:9,=,1,0; sid:8;)"#).is_err());
}

#[test]
fn thresholds_flowbits_flags() {
    let r = parse(r#"alert tcp any any -> any any (flags:S,12; flowbits:isset,a|b; flowbits:noalert; threshold: type limit, track by_src, count 1, seconds 60; dsize:>10; sid:9;)"#).unwrap();
    assert!(r.noalert);
    assert!(matches!(r.flowbits[0], FlowbitCmd::IsSet { any: true, .. }));
    assert_eq!(r.threshold.unwrap().kind, ThresholdKind::Limit);
    assert_eq!(
        r.packet_tests[0],
        PacketTest::TcpFlags(TcpFlagsTest {
            flags: 0x02,
            modifier: FlagsModifier::Exact,
            mask: 0xc0
        })
    );
    assert_eq!(r.packet_tests[1], PacketTest::Dsize(NumCmp::Gt(10)));
}

#[test]
fn flowints_share_ids_across_rules() {
    let mut ctx = ParseCtx::default();
    let a = ctx
        .parse_rule(
            "alert tcp any any -> any any (flowint: ET.dll.count, +, 1; sid:1;)",
            "t",
            1,
        )
        .unwrap();
    let b = ctx
        .parse_rule("alert tcp any any -> any any (flowint:ET.dll.count,>=,other; flowint:other,isnotset; flowint:x2,=,4294967295; sid:2;)", "t", 2)
        .unwrap();
    assert_eq!(
        a.flowints,
        [FlowintCmd::Modify {
            var: 0,
            op: FlowintOp::Add,
            value: FlowintVal::Lit(1)
        }]
    );
    assert_eq!(
        b.flowints,
        [
            FlowintCmd::Compare {
                var: 0,
                cmp: FlowintCmp::Ge,
                value: FlowintVal::Var(1)
            },
            FlowintCmd::IsSet { var: 1, set: false },
            FlowintCmd::Modify {
                var: 2,
                op: FlowintOp::Set,
                value: FlowintVal::Lit(u32::MAX)
            },
        ]
    );
    assert!(!crate::compile::is_ip_only(&a));
    for bad in [
        "x",
        "cnt",
        "cnt,+",
        "cnt,isset,1",
        "1cnt,=,1",
        "cnt,=,4294967296",
        "cnt,=,a-b",
        "cnt,**,1",
        "c\u{e9},=,1",
        "cnt,=,1,2",
    ] {
        let text = format!("alert tcp any any -> any any (flowint:{bad}; sid:3;)");
        assert!(
            matches!(
                parse(&text),
                Err(RuleError {
                    kind: ErrorKind::BadValue { .. },
                    ..
                })
            ),
            "{bad}"
        );
    }
}

mod keywords {
    use super::parse;
    use crate::ast::*;
    use crate::compile::{Ruleset, inspect};
    use crate::parse::ErrorKind;
    use crate::transform::{Transform, TransformBuf};

    fn compile(text: &str) -> Ruleset {
        let (rs, errs) = Ruleset::compile(vec![parse(text).unwrap()], 0);
        assert!(errs.is_empty(), "{errs:?}");
        rs
    }

    #[test]
    fn transforms_make_a_distinct_program() {
        let r = parse(r#"alert dns any any -> any any (dns.query; content:"a"; dns.query; dotprefix; content:".evil.com"; endswith; sid:1;)"#).unwrap();
        assert_eq!(r.programs.len(), 2);
        assert!(r.programs[0].transforms.is_empty());
        assert_eq!(r.programs[1].transforms, vec![Transform::DotPrefix]);
        // a transform after a content starts a new program on the same buffer
        let r = parse(r#"alert http any any -> any any (http.uri; content:"v="; from_base64: offset 2; content:"x"; sid:2;)"#).unwrap();
        assert_eq!(r.programs.len(), 2);
        assert!(matches!(
            r.programs[1].transforms[0],
            Transform::FromBase64 { offset: 2, .. }
        ));
        let e =
            parse(r#"alert tcp any any -> any any (dotprefix; content:"a"; sid:3;)"#).unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::BadValue { ref keyword, .. } if keyword == "dotprefix")
        );
        assert!(
            parse(
                r#"alert http any any -> any any (http.uri; to_lowercase; content:"ABC"; sid:4;)"#
            )
            .is_err()
        );
        assert!(
            parse(r#"alert http any any -> any any (http.uri; xor:"zz"; content:"a"; sid:5;)"#)
                .is_err()
        );
    }

    #[test]
    fn dotprefix_is_prefiltered_without_the_dot() {
        let rs = compile(
            r#"alert dns any any -> any any (dns.query; dotprefix; content:".evil.com"; endswith; sid:1;)"#,
        );
        let cr = &rs.rules[0];
        assert_eq!(cr.prefilter_buffer, Some(Buffer::DnsQuery));
        assert!(rs.unfiltered(Buffer::DnsQuery).is_empty());
        let mut scratch = rs.alloc_scratch().unwrap();
        let mut out = Vec::new();
        rs.prefilter(Buffer::DnsQuery, b"a.evil.com", &mut scratch, &mut out);
        assert_eq!(out, vec![0]);
        let mut tb = TransformBuf::new();
        let mut vars = [0; 8];
        let p = &cr.programs[0];
        assert!(p.run(b"a.evil.com", &mut vars, 0, &mut tb));
        assert!(p.run(b"evil.com", &mut vars, 0, &mut tb));
        assert!(!p.run(b"notevil.com", &mut vars, 0, &mut tb));
    }

    #[test]
    fn unsound_transforms_are_unfiltered() {
        let rs = compile(
            r#"alert http any any -> any any (http.uri; url_decode; content:"/a b"; sid:1;)"#,
        );
        assert_eq!(rs.unfiltered(Buffer::HttpUri), &[0]);
        let mut tb = TransformBuf::new();
        assert!(rs.rules[0].programs[0].run(b"/a%20b", &mut [0; 8], 0, &mut tb));
        // a literal of another, untransformed buffer is used instead
        let rs = compile(
            r#"alert http any any -> any any (http.method; content:"POST"; http.uri; url_decode; content:"/a b"; sid:1;)"#,
        );
        assert_eq!(rs.rules[0].prefilter_buffer, Some(Buffer::HttpMethod));
        // to_lowercase: prefiltered nocase on the raw buffer
        let rs = compile(
            r#"alert http any any -> any any (http.host; to_lowercase; content:"evil"; sid:1;)"#,
        );
        let mut scratch = rs.alloc_scratch().unwrap();
        let mut out = Vec::new();
        rs.prefilter(Buffer::HttpHost, b"EVIL.com", &mut scratch, &mut out);
        assert_eq!(out, vec![0]);
    }

    #[test]
    fn base64_decode_and_data() {
        let r = parse(r#"alert tcp any any -> any any (content:"Authorization: Basic "; base64_decode:bytes 12, relative; base64_data; content:"admin"; depth:5; sid:1;)"#).unwrap();
        assert_eq!(r.programs.len(), 1);
        match &r.programs[0].steps[1] {
            Step::Base64Decode {
                bytes: Some(12),
                relative: true,
                data,
                ..
            } => assert!(matches!(&data[0], Step::Content(c) if c.pattern == b"admin")),
            s => panic!("{s:?}"),
        }
        let rs = compile(&r.text);
        let steps = &rs.rules[0].programs[0].steps;
        let mut vars = [0; 8];
        assert!(inspect(
            steps,
            b"xx Authorization: Basic YWRtaW46cGFzcw==",
            &mut vars
        ));
        assert!(!inspect(
            steps,
            b"xx Authorization: Basic dXNlcjpwYXNz",
            &mut vars
        ));
        assert!(
            parse(r#"alert tcp any any -> any any (base64_data; content:"a"; sid:2;)"#).is_err()
        );
        assert!(parse(r#"alert tcp any any -> any any (base64_decode:bytes x; sid:3;)"#).is_err());
    }

    #[test]
    fn absent_programs() {
        let r = parse(r#"alert http any any -> any any (http.request_body; absent; http.method; content:"POST"; sid:1;)"#).unwrap();
        assert_eq!(r.programs[0].absent, Some(false));
        let rs = compile(&r.text);
        assert_eq!(rs.rules[0].prefilter_buffer, Some(Buffer::HttpMethod));
        let p = &rs.rules[0].programs[0];
        assert!(p.when_missing());
        assert!(!p.run(b"body", &mut [0; 8], 0, &mut TransformBuf::new()));
        // absent only: a candidate for every transaction
        let rs = compile(r#"alert http any any -> any any (http.referer; absent; sid:2;)"#);
        assert_eq!(rs.tx_always, vec![0]);
        // or_else: the content counts when the buffer is there, and never prefilters
        let rs = compile(
            r#"alert http any any -> any any (http.user_agent; absent: or_else; content:"foo"; sid:3;)"#,
        );
        assert_eq!(rs.tx_always, vec![0]);
        let p = &rs.rules[0].programs[0];
        assert!(p.run(b"foo", &mut [0; 8], 0, &mut TransformBuf::new()));
        assert!(!p.run(b"bar", &mut [0; 8], 0, &mut TransformBuf::new()));
        assert!(
            parse(r#"alert http any any -> any any (http.uri; absent; content:"x"; sid:4;)"#)
                .is_err()
        );
        assert!(
            parse(r#"alert http any any -> any any (http.uri; absent: maybe; sid:5;)"#).is_err()
        );
    }

    #[test]
    fn aliases_and_value_keywords() {
        let r = parse(
            r#"alert tls any any -> any any (tls.subject:"CN=x"; tls.issuerdn:!"CN=y"; sid:1;)"#,
        )
        .unwrap();
        assert_eq!(r.programs[0].buffer, Buffer::TlsCertSubject);
        assert!(
            matches!(&r.programs[1].steps[0], Step::Content(c) if c.negated && c.pattern == b"CN=y")
        );
        let r = parse(r#"alert http any any -> any any (http_request_line; content:"GET /"; http_header_names; content:"Host"; sid:2;)"#).unwrap();
        assert_eq!(
            r.programs.iter().map(|p| p.buffer).collect::<Vec<_>>(),
            vec![Buffer::HttpRequestLine, Buffer::HttpHeaderNames]
        );
        let r = parse(
            r#"alert http any any -> any any (fileext:"exe"; filename:"setup"; filestore; sid:3;)"#,
        )
        .unwrap();
        match &r.programs[0].steps[..] {
            [Step::Content(a), Step::Content(b)] => {
                assert!(a.endswith && a.nocase && a.pattern == b".exe");
                assert_eq!(b.pattern, b"setup");
            }
            s => panic!("{s:?}"),
        }
        assert_eq!(
            parse(r#"alert tls any any -> any any (app-layer-state:client_hello_done; sid:4;)"#)
                .unwrap_err()
                .kind,
            ErrorKind::Unsupported("app-layer-state".into())
        );
    }

    #[test]
    fn datasets_and_hash_lists_load_next_to_the_rules() {
        let dir = std::env::temp_dir().join(format!("mimamori-kw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ua.csv"), "Zm9v\n").unwrap();
        std::fs::write(
            dir.join("bad.sha256"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
        )
        .unwrap();
        let file = dir.join("t.rules").display().to_string();
        let mut ctx = crate::parse::ParseCtx::default();
        let a = ctx.parse_rule(r#"alert http any any -> any any (http.user_agent; dataset:isset,ua,type string,load ua.csv; sid:1;)"#, &file, 1).unwrap();
        let b = ctx.parse_rule(r#"alert http any any -> any any (http.user_agent; dataset:isnotset,ua,type string,load ua.csv; sid:2;)"#, &file, 2).unwrap();
        let c = ctx
            .parse_rule(
                r#"alert http any any -> any any (filesha256:bad.sha256; sid:3;)"#,
                &file,
                3,
            )
            .unwrap();
        assert!(
            matches!(&c.packet_tests[0], PacketTest::FileHash { algo: HashAlgo::Sha256, negated: false, list } if list.len() == 1)
        );
        let e = ctx.parse_rule(r#"alert http any any -> any any (http.user_agent; dataset:isset,other,type string,load nope.csv; sid:4;)"#, &file, 4).unwrap_err();
        assert!(e.to_string().contains("nope.csv"), "{e}");
        assert!(
            ctx.parse_rule(
                r#"alert http any any -> any any (dataset:isset,ua; sid:5;)"#,
                &file,
                5
            )
            .is_err()
        );
        let (rs, errs) = Ruleset::compile(vec![a, b], 0);
        assert!(errs.is_empty());
        let mut vars = [0; 8];
        assert!(inspect(&rs.rules[0].programs[0].steps, b"foo", &mut vars));
        assert!(!inspect(&rs.rules[0].programs[0].steps, b"bar", &mut vars));
        assert!(inspect(&rs.rules[1].programs[0].steps, b"bar", &mut vars));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
