//! The whole system in the lab (SPEC §3.4, §7): the cloud (and its SMTP server) on the lab's
//! "internet" node, the appliance activated through its in-band address. Shared by the
//! end-to-end tests that need the appliance connected to a real cloud.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cloud::{Cloud, Place, Smtp, provision, subject, wait_for};
use crate::lab::Lab;
use serde_json::Value;

/// The C2 rule: ET Open's shape for a command-and-control check-in (★★★ by the default
/// scoring policy: trojan-activity, Major, confidence High).
pub const C2_RULE: &str = r#"drop http any any -> any any (msg:"LAB C2 check-in (test)"; flow:to_server,established; http.uri; content:"/c2/beacon"; classtype:trojan-activity; metadata: signature_severity Major, confidence High; sid:9100001; rev:1;)"#;
pub const C2_SID: u64 = 9_100_001;
/// The rule a published bundle adds.
pub const NEW_RULE: &str = r#"alert http any any -> any any (msg:"LAB rule from a bundle (test)"; flow:to_server,established; http.uri; content:"/bundle-test"; classtype:policy-violation; sid:9200001; rev:1;)"#;
pub const NEW_SID: u64 = 9_200_001;
pub const LAN_IP: &str = "198.18.0.10";

/// A lab with the cloud (and its SMTP server) on the "internet" node and the appliance
/// activated through its in-band address.
pub struct System {
    pub lab: Lab,
    pub cloud: Cloud,
    pub smtp: Smtp,
    pub contract: u64,
    pub device: String,
    pub dir: PathBuf,
}

pub fn lan_mac(lab: &Lab) -> String {
    lab.exec("lan", &["cat", "/sys/class/net/eth0/address"])
        .stdout
        .trim()
        .to_string()
}

impl System {
    /// `timing`: the cloud's `[timing]` body. `auto_isolation`: the contract's option.
    pub fn up(name: &str, timing: &str, auto_isolation: bool) -> Option<System> {
        System::up_with(name, timing, auto_isolation, &[], "")
    }

    /// As [`System::up`], with more rule files loaded after the C2 rule (ET Open, say) and
    /// `extra` appended to the appliance's configuration.
    pub fn up_with(
        name: &str,
        timing: &str,
        auto_isolation: bool,
        more_rules: &[PathBuf],
        extra: &str,
    ) -> Option<System> {
        if !crate::lab::available() {
            return None;
        }
        let lab = Lab::up(name);
        let dir = lab.dir.join("system");
        std::fs::create_dir_all(&dir).expect("test folder");
        let inet = format!("{}-inet", lab.prefix);
        let smtp = Smtp::start_in(Some(&inet), &dir.join("mail"), 2525);
        let place = Place {
            netns: Some(inet.clone()),
            ingest_ip: Some("198.18.0.1".into()),
            server_names: vec!["cloud.lab.test".into()],
        };
        std::fs::create_dir_all(dir.join("cloud")).expect("cloud folder");
        let cloud = Cloud::start_in(place, &dir.join("cloud"), 2525, timing);
        let (contract, device, code) = provision(&cloud, &["owner@example.com"]);
        if auto_isolation {
            cloud.admin(&[
                "contract",
                "isolation",
                &contract.to_string(),
                "--auto",
                "on",
                "--allow",
                "198.18.0.1:53",
            ]);
        }
        let ca = crate::cloud::ca_file(&cloud);
        let key = cloud.admin(&["rules", "status"])["public_key"]
            .as_str()
            .expect("rules status names the public key")
            .to_string();
        let rules = dir.join("c2.rules");
        std::fs::write(&rules, format!("{C2_RULE}\n")).expect("rules");
        // the cloud scores from its own copy of the rules the appliance runs
        crate::cloud::import_rules(&cloud, &rules);
        let state = dir.join("state");
        let extra = format!(
            "[uplink]\nstate_dir = {state:?}\ncloud = \"cloud.lab.test:{}\"\nactivation_code = \"{code}\"\ncloud_ca = {ca:?}\nbundle_key = \"{key}\"\nheartbeat_secs = 2\n{extra}",
            cloud.ingest
        );
        let mut lab = lab;
        let tpl_rules = format!("rules = [\"{}/lab.rules\"]", lab.dir.display());
        let mut files = vec![format!("{rules:?}")];
        files.extend(more_rules.iter().map(|p| format!("{p:?}")));
        let ours = format!("rules = [{}]", files.join(", "));
        // the office is the clients' corner of the lab's /24; the sites are the internet
        let home = (
            "home_net = \"[198.18.0.0/24,2001:db8::/64]\"",
            "home_net = \"[198.18.0.8/29,2001:db8::8/125]\"",
        );
        lab.start(&[(tpl_rules.as_str(), ours.as_str()), home], &extra);
        let s = System {
            lab,
            cloud,
            smtp,
            contract,
            device,
            dir,
        };
        s.wait_online(Duration::from_secs(60));
        Some(s)
    }

    pub fn device(&self) -> Value {
        self.cloud.admin(&["device", "show", &self.device])
    }

    pub fn wait_online(&self, limit: Duration) {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.device()["online"] == true {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "the appliance did not come online within {limit:?}: {}\n{}",
            self.device(),
            self.lab.log()
        );
    }

    pub fn alerts(&self) -> Vec<Value> {
        self.cloud.alerts()
    }

    pub fn mails_with(&self, needle: &str) -> usize {
        self.smtp
            .mails()
            .iter()
            .filter(|(_, m)| subject(m).contains(needle))
            .count()
    }
}

pub fn wait(what: &str, secs: u64, f: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(secs), f)
}

pub fn contains_bytes(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for e in walk(dir) {
        if let Ok(b) = std::fs::read(&e) {
            if b.windows(needle.len()).any(|w| w == needle) {
                hits.push(e);
            }
        }
    }
    hits
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn eve_alerts(lab: &Lab, sid: u64) -> usize {
    lab.eve()
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == sid)
        .count()
}

pub fn cloud_alerts(s: &System, sid: u64) -> Vec<Value> {
    s.alerts()
        .into_iter()
        .filter(|a| a["event"]["alert"]["detection"]["Signature"]["sid"] == sid)
        .collect()
}

