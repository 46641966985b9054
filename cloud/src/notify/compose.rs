//! Mail texts (Japanese, SPEC §5.3).

use std::fmt::Write;

use crate::clock::{Ms, format_local};
use crate::score::Level;
use crate::store::{AlertRecord, Contract, Device};

fn device_name(devices: &[Device], id: &str) -> String {
    devices.iter().find(|d| d.id == id).map_or_else(
        || id.to_string(),
        |d| {
            if d.name.is_empty() {
                d.id.clone()
            } else {
                format!("{} ({})", d.name, d.id)
            }
        },
    )
}

fn action_ja(a: protocol::messages::Action) -> &'static str {
    use protocol::messages::Action::*;
    match a {
        Allowed => "通過（検知のみ）",
        Blocked => "遮断",
        Disarmed => "無害化（ファイルを遮断）",
        Reset => "通信を切断",
    }
}

const FOOTER: &str = "\n--\nMimamori 見守りサービス\nこのメールは送信専用です。ご不明な点はサポート窓口までお問い合わせください。\n";

/// The batched important-alert mail: (subject, body).
pub fn alert_mail(
    contract: &Contract,
    alerts: &[AlertRecord],
    devices: &[Device],
    tz: i64,
) -> (String, String) {
    let top = alerts
        .iter()
        .map(|a| a.level)
        .max_by_key(|l| l.rank())
        .unwrap_or(Level::Info);
    let subject = format!(
        "【Mimamori】重要アラート {} ({}件) {}",
        top.stars(),
        alerts.len(),
        contract.name
    );
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "Mimamori が重要なアラートを {} 件検知しました。最も高い重要度は {} です。\n",
        alerts.len(),
        top.label_ja()
    );
    for (i, a) in alerts.iter().enumerate() {
        let f = a.event.flow();
        let _ = writeln!(
            b,
            "■ アラート {} / {}{}",
            i + 1,
            alerts.len(),
            if a.level == Level::Investigating {
                "  ※調査中※"
            } else {
                ""
            }
        );
        let _ = writeln!(
            b,
            "  日時（日本時間）: {}",
            format_local(a.event.time_ms(), tz)
        );
        let _ = writeln!(b, "  重要度: {}", a.level.label_ja());
        let _ = writeln!(b, "  判定理由: {}", a.reason);
        let _ = writeln!(b, "  機器: {}", device_name(devices, &a.device));
        let _ = writeln!(
            b,
            "  社内端末: IP {}  MAC {}",
            f.internal_ip, f.internal_mac
        );
        let _ = writeln!(
            b,
            "  通信相手: {}{}",
            f.external_ip,
            f.external_port.map(|p| format!(":{p}")).unwrap_or_default()
        );
        let site = a.event.site();
        if !site.is_empty() {
            let _ = writeln!(b, "  URL / SNI / ドメイン: {site}");
        }
        let _ = writeln!(b, "  脅威: {}", a.event.what());
        let _ = writeln!(b, "  実施した処置: {}", action_ja(a.event.action()));
        let _ = writeln!(b, "  お客様に実施いただく対応: {}", a.level.actions_ja());
        let _ = writeln!(b, "  アラート番号: {}\n", a.id);
    }
    let _ = writeln!(b, "詳細はポータルのアラート画面でご確認いただけます。");
    b.push_str(FOOTER);
    (subject, b)
}

/// Stop notice (first detection or the daily reminder).
pub fn stop_mail(
    contract: &Contract,
    device: &Device,
    last_ms: Ms,
    now: Ms,
    tz: i64,
    daily: bool,
) -> (String, String) {
    let subject = format!(
        "【Mimamori】機器停止のお知らせ{} {}",
        if daily { "（継続中）" } else { "" },
        contract.name
    );
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "Mimamori 機器「{}」からの通信が途絶えています。",
        device_name(std::slice::from_ref(device), &device.id)
    );
    let _ = writeln!(b, "  最終受信: {}（日本時間）", format_local(last_ms, tz));
    let _ = writeln!(b, "  確認時刻: {}（日本時間）\n", format_local(now, tz));
    let _ = writeln!(
        b,
        "停止している間、ネットワークは保護されていません。機器の電源とケーブル（WAN/LAN）の接続をご確認ください。"
    );
    let _ = writeln!(b, "復旧しない場合はサポート窓口までご連絡ください。");
    b.push_str(FOOTER);
    (subject, b)
}

pub fn recovery_mail(
    contract: &Contract,
    device: &Device,
    stopped_ms: Ms,
    now: Ms,
    tz: i64,
) -> (String, String) {
    let subject = format!("【Mimamori】機器復旧のお知らせ {}", contract.name);
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "Mimamori 機器「{}」との通信が回復しました。",
        device_name(std::slice::from_ref(device), &device.id)
    );
    let _ = writeln!(
        b,
        "  停止を検知: {}（日本時間）",
        format_local(stopped_ms, tz)
    );
    let _ = writeln!(b, "  復旧: {}（日本時間）", format_local(now, tz));
    b.push_str(FOOTER);
    (subject, b)
}

pub fn rerate_mail(
    contract: &Contract,
    a: &AlertRecord,
    old: Level,
    note: &str,
    tz: i64,
) -> (String, String) {
    let subject = format!(
        "【Mimamori】アラート重要度変更 {} → {} {}",
        old.stars(),
        a.level.stars(),
        contract.name
    );
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "アラート番号 {} の重要度を {} から {} に変更しました。",
        a.id,
        old.label_ja(),
        a.level.label_ja()
    );
    if !note.is_empty() {
        let _ = writeln!(b, "  理由: {note}");
    }
    let _ = writeln!(
        b,
        "  日時（日本時間）: {}",
        format_local(a.event.time_ms(), tz)
    );
    let _ = writeln!(b, "  社内端末: IP {}", a.event.flow().internal_ip);
    let _ = writeln!(b, "  脅威: {}", a.event.what());
    let _ = writeln!(b, "\nお客様に実施いただく対応: {}", a.level.actions_ja());
    b.push_str(FOOTER);
    (subject, b)
}

pub fn result_mail(
    contract: &Contract,
    a: &AlertRecord,
    result: &str,
    tz: i64,
) -> (String, String) {
    let subject = format!("【Mimamori】調査結果のご報告 {}", contract.name);
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "※調査中※ としてお知らせしたアラート番号 {} の調査が完了しました。\n",
        a.id
    );
    let _ = writeln!(
        b,
        "  日時（日本時間）: {}",
        format_local(a.event.time_ms(), tz)
    );
    let _ = writeln!(b, "  社内端末: IP {}", a.event.flow().internal_ip);
    let _ = writeln!(b, "  検知内容: {}", a.event.what());
    let _ = writeln!(b, "\n調査結果:\n{result}\n");
    let _ = writeln!(b, "最終的な重要度: {}", a.level.label_ja());
    b.push_str(FOOTER);
    (subject, b)
}

pub fn firmware_mail(
    contract: &Contract,
    version: &str,
    notes: &str,
    apply: &str,
) -> (String, String) {
    let subject = format!(
        "【Mimamori】ファームウェア更新のお知らせ（{version}） {}",
        contract.name
    );
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "Mimamori 機器の新しいファームウェア {version} を公開しました。"
    );
    let _ = writeln!(b, "  適用: {apply}");
    if !notes.is_empty() {
        let _ = writeln!(b, "\n変更内容:\n{notes}");
    }
    b.push_str(FOOTER);
    (subject, b)
}
