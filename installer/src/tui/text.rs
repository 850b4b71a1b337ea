//! Every word the wizard shows, in English and Simplified Chinese, side by side so a change to
//! one is seen next to the other. A missing translation does not compile. `{}` in a text is
//! filled in order by [`fill`]. Error messages that come from the answer file's checks are
//! ferry's own (`ferry validate` prints the same), shown as they are in both languages.

use crate::cmdline::install::LangArg;

/// The wizard's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// `--lang`, else the locale (`LC_ALL`, then `LC_MESSAGES`, then `LANG`, as POSIX orders
    /// them): Chinese for `zh*`, English otherwise.
    pub fn choose(arg: Option<LangArg>, env: impl Fn(&str) -> Option<String>) -> Lang {
        match arg {
            Some(LangArg::En) => Lang::En,
            Some(LangArg::Zh) => Lang::Zh,
            None => {
                let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
                    .iter()
                    .filter_map(|v| env(v))
                    .find(|v| !v.is_empty())
                    .unwrap_or_default();
                if locale.to_ascii_lowercase().starts_with("zh") {
                    Lang::Zh
                } else {
                    Lang::En
                }
            }
        }
    }

    /// Its catalogue.
    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        }
    }

    /// `en` or `zh` (snapshot names).
    #[cfg(test)]
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
}

/// `template` with each `{}` replaced by the next argument, and `{0}`, `{1}`... by that
/// argument (a translation may need another order).
pub fn fill(template: &str, args: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut next = 0;
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let close = after.find('}');
        let index = match close {
            Some(0) => {
                next += 1;
                Some(next - 1)
            }
            Some(c) => after[..c].parse::<usize>().ok(),
            None => None,
        };
        match (index.and_then(|n| args.get(n)), close) {
            (Some(a), Some(c)) => {
                out.push_str(&a.to_string());
                rest = &after[c + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

macro_rules! catalogue {
    ($($(#[$doc:meta])* $name:ident: $en:expr, $zh:expr;)*) => {
        /// The wizard's texts in one language.
        pub struct Text {
            $($(#[$doc])* pub $name: &'static str,)*
        }
        /// English.
        pub static EN: Text = Text { $($name: $en,)* };
        /// Simplified Chinese.
        pub static ZH: Text = Text { $($name: $zh,)* };
    };
}

catalogue! {
    // The frame.
    /// Title bar.
    app_title: "ferry install", "ferry 安装向导";
    /// `step 3/8`.
    step: "step {}/{}", "第 {}/{} 步";
    /// Shown on a console smaller than 80x24.
    too_small: "The window is {}x{}; the wizard needs at least 80x24.", "窗口为 {}x{}，向导至少需要 80x24。";
    /// The help overlay's title.
    help_title: "Keys", "按键";
    /// Help lines (one per line).
    help_body: "Tab / Shift-Tab, Up / Down   move between fields\n\
                Enter                        edit a field, confirm an edit\n\
                Esc                          cancel an edit; back a screen\n\
                PgDn / Ctrl-N                next screen\n\
                PgUp / Ctrl-P                previous screen\n\
                Ctrl-S / F2                  save the answer file\n\
                ? / F1                       this help (any key closes it)\n\
                Ctrl-C / Ctrl-Q              leave (the wizard reopens here)",
               "Tab / Shift-Tab、上 / 下      在字段之间移动\n\
                回车                          编辑字段、确认编辑\n\
                Esc                           取消编辑；返回上一屏\n\
                PgDn / Ctrl-N                 下一屏\n\
                PgUp / Ctrl-P                 上一屏\n\
                Ctrl-S / F2                   保存应答文件\n\
                ? / F1                        本帮助（按任意键关闭）\n\
                Ctrl-C / Ctrl-Q               退出（下次从此处继续）";
    /// Key hints at the bottom.
    keys_nav: "Enter edit  Tab field  PgDn next  PgUp back  ^S save  ? help", "回车 编辑  Tab 字段  PgDn 下一屏  PgUp 上一屏  ^S 保存  ? 帮助";
    /// Key hints on the license screen.
    keys_license: "x export request  r QR  Enter edit  Tab field  PgDn next  PgUp back  ^S save",
                  "x 导出请求  r 二维码  回车 编辑  Tab 字段  PgDn 下一屏  PgUp 上一屏  ^S 保存";
    /// Key hints with the QR code up.
    keys_qr: "Any key: back to the license screen", "任意键：返回许可证屏";
    /// Key hints while a text is edited.
    keys_edit: "Enter confirm  Esc cancel  Left/Right move  Backspace delete", "回车 确认  Esc 取消  左/右 移动  退格 删除";
    /// Status after a save.
    saved: "saved {} and {}", "已保存 {} 和 {}";
    /// Status after a save that failed.
    save_failed: "not saved: {}", "未保存：{}";
    /// Status when the wizard reopened a draft.
    resumed: "reopened where you left off ({}); `ferry install --new` starts afresh", "已从上次中断处继续（{}）；`ferry install --new` 可重新开始";
    /// The answers are valid.
    valid: "the answer file is valid", "应答文件有效";
    /// Shown before a validation message.
    invalid: "to fix", "需修正";
    /// A yes value.
    yes: "yes", "是";
    /// A no value.
    no: "no", "否";
    /// An empty value.
    unset: "(not set)", "（未设置）";
    /// Cannot go on: the answers are not valid.
    fix_first: "fix this first: {}", "请先修正：{}";

    // Screen titles.
    /// Bundle screen.
    screen_bundle: "Bundle", "安装包";
    /// Hosts screen.
    screen_hosts: "Hosts", "主机";
    /// Roles screen.
    screen_roles: "Roles", "角色";
    /// Cluster screen.
    screen_cluster: "Cluster", "集群";
    /// Apps screen.
    screen_apps: "Apps", "应用";
    /// License screen.
    screen_license: "License", "许可证";
    /// Review screen.
    screen_review: "Review", "确认";
    /// Run screen.
    screen_run: "Install", "安装";
    /// Done screen.
    screen_done: "Done", "完成";

    // Bundle.
    /// Intro.
    bundle_intro: "The signed bundle brought to this site, and the vendor key that signed it. Leave both empty to set up the hosts' OS baseline only.",
                  "带到现场的已签名安装包，以及签名它的厂商公钥。两者都留空则只配置主机的操作系统基线。";
    /// Field.
    field_answers: "Answer file", "应答文件";
    /// Field.
    field_bundle: "Bundle file", "安装包文件";
    /// Field.
    field_pubkey: "Vendor public key", "厂商公钥";
    /// Action.
    bundle_verify: "[ Verify the bundle ]", "[ 校验安装包 ]";
    /// Progress.
    bundle_verifying: "verifying {}", "正在校验 {}";
    /// Result.
    bundle_verified: "signature and every blob check out: {} items, {}", "签名和所有数据块均校验通过：{} 项，{}";
    /// Result.
    bundle_bad: "the bundle does not verify: {}", "安装包校验失败：{}";
    /// Bill of materials header.
    bundle_bom: "Bill of materials", "物料清单";
    /// Not verified yet.
    bundle_not_verified: "not verified yet: select Verify and press Enter", "尚未校验：选中“校验安装包”后按回车";

    // Hosts.
    /// Intro.
    hosts_intro: "a add  Enter edit  d delete  i import Ansible  c check again  / filter", "a 添加  回车 编辑  d 删除  i 导入 Ansible  c 重新检查  / 过滤";
    /// Column.
    col_host: "HOST", "主机";
    /// Column.
    col_address: "ADDRESS", "地址";
    /// Column.
    col_user: "USER", "用户";
    /// Column.
    col_check: "CHECK", "检查";
    /// Column.
    col_os: "OS", "系统";
    /// Column.
    col_cpu: "CPU", "CPU";
    /// Column.
    col_mem: "MEM", "内存";
    /// Column.
    col_disk: "DISK", "磁盘";
    /// Column.
    col_gpu: "GPU", "GPU";
    /// Column.
    col_skew: "SKEW", "时钟差";
    /// Check states.
    check_pending: "...", "...";
    /// Check states.
    check_ok: "ok", "正常";
    /// Check states.
    check_failed: "FAIL", "失败";
    /// Check states.
    check_warn: "WARN", "警告";
    /// No hosts yet.
    hosts_empty: "No hosts yet: press a to add one, or i to import an Ansible inventory.", "还没有主机：按 a 添加，或按 i 导入 Ansible 清单。";
    /// Filter prompt.
    hosts_filter: "filter: {}", "过滤：{}";
    /// Count line.
    hosts_count: "{} hosts, {} checked, {} with problems", "{} 台主机，已检查 {}，有问题 {}";
    /// Editor title.
    host_edit: "Host {}", "主机 {}";
    /// Field.
    field_name: "Name", "名称";
    /// Field.
    field_address: "Address", "地址";
    /// Field.
    field_port: "SSH port", "SSH 端口";
    /// Field.
    field_user: "User", "用户";
    /// Field.
    field_key: "Private key file", "私钥文件";
    /// Field.
    field_password_env: "Password from env var", "密码所在环境变量";
    /// Field.
    field_password: "Password (memory only)", "密码（仅存于内存）";
    /// Field.
    field_sudo: "sudo", "sudo";
    /// Field.
    field_sudo_env: "sudo password env var", "sudo 密码环境变量";
    /// Field.
    field_bastion: "Jump host", "跳板机";
    /// Import prompt.
    import_prompt: "Ansible inventory file to import", "要导入的 Ansible 清单文件";
    /// Import result.
    imported: "imported {} hosts from {}", "已从 {1} 导入 {0} 台主机";
    /// Import result.
    import_notes: "not carried over: {}", "未导入：{}";
    /// Secrets note.
    secret_note: "Saved as {} (the value is never written); export it before an unattended run.", "保存为 {}（从不写入密码本身）；无人值守运行前请先 export。";

    // Roles.
    /// Intro.
    roles_intro: "Space toggles the role under the cursor; t makes the host the time source.", "空格切换光标处的角色；t 设该主机为时间源。";
    /// Column.
    col_server: "SERVER", "服务端";
    /// Column.
    col_agent: "AGENT", "工作节点";
    /// Column.
    col_time: "TIME SOURCE", "时间源";
    /// Footer.
    roles_count: "{} servers, {} agents; time source: {}", "{} 个服务端，{} 个工作节点；时间源：{}";

    // Cluster.
    /// Intro.
    cluster_intro: "The cluster these hosts are prepared for.", "这些主机将加入的集群。";
    /// Field.
    field_cluster_name: "Cluster name", "集群名称";
    /// Field.
    field_cluster_id: "Cluster id (empty: random, made at the first install)", "集群 ID（留空：首次安装时随机生成）";
    /// Field.
    field_distribution: "Kubernetes (none: OS baseline only)", "Kubernetes（none：仅操作系统基线）";
    /// Field.
    field_api_address: "API address (default: first server)", "API 地址（默认：第一个服务端）";
    /// Field.
    field_cluster_cidr: "Pod network (default 10.42.0.0/16)", "Pod 网络（默认 10.42.0.0/16）";
    /// Field.
    field_service_cidr: "Service network (default 10.43.0.0/16)", "Service 网络（默认 10.43.0.0/16）";
    /// Field.
    field_cluster_dns: "Cluster DNS address (default 10.43.0.10)", "集群 DNS 地址（默认 10.43.0.10）";
    /// Field.
    field_tls_san: "Extra API names (comma separated)", "API 证书附加名称（逗号分隔）";
    /// Field.
    field_rollback: "On failure undo (host, run, never)", "失败时回滚（host、run、never）";
    /// Field.
    field_strict: "Refuse unknown host keys", "拒绝未知主机密钥";
    /// Field.
    field_time_upstream: "Upstream NTP servers (comma separated)", "上游 NTP 服务器（逗号分隔）";

    // Apps.
    /// Intro.
    apps_intro: "The bundle's apps, deployed after the cluster, and what this site gives them ([apps]). Enter edits; empty keeps the default.",
                "安装包携带的应用（在集群之后部署），以及本现场为它们设定的参数（应答文件的 [apps]）。回车编辑；留空则使用默认值。";
    /// Field.
    field_apps_deploy: "Packages to deploy (comma separated; blank: all)", "要部署的应用包（逗号分隔；留空：全部）";
    /// Field.
    field_apps_domain: "Site domain (default: the API address)", "现场域名（默认：API 地址）";
    /// Field.
    field_apps_timeout: "Deploy timeout, seconds (default 300)", "部署超时，秒（默认 300）";
    /// Field.
    field_apps_volume_node: "Node for local volumes (default: first server)", "本地卷所在节点（默认：第一个服务端）";
    /// Field.
    field_apps_gpu: "GPU component, no GPU node (fail, allow)", "GPU 组件无 GPU 节点时（fail、allow）";
    /// No bundle.
    apps_no_bundle: "No bundle: no apps are deployed.", "未指定安装包：不部署任何应用。";
    /// Bundle not verified.
    apps_unverified: "The bundle's apps are listed once it is verified (Bundle screen).", "安装包校验通过后列出其中的应用（见“安装包”屏）。";
    /// Being verified.
    apps_verifying: "reading the bundle's apps...", "正在读取安装包中的应用...";
    /// None in the bundle.
    apps_none: "The bundle carries no apps.", "安装包中没有应用。";
    /// Column.
    col_param: "PARAMETER", "参数";
    /// Column.
    col_type: "TYPE", "类型";
    /// Column.
    col_default: "DEFAULT", "默认值";
    /// Column.
    col_value: "VALUE", "取值";
    /// Column.
    col_about: "DESCRIPTION", "说明";
    /// A parameter left at its default.
    apps_default: "(default)", "（默认）";
    /// A parameter with no default.
    apps_required: "(required)", "（必填）";
    /// A secret's value.
    apps_hidden: "(hidden)", "（已隐藏）";
    /// The focused parameter: name, type, description, what to write.
    apps_param: "{} ({}): {} {}.", "{}（{}）：{} {}。";
    /// What to write for a text parameter.
    hint_string: "Write text", "填写文本";
    /// What to write for a whole-number parameter.
    hint_integer: "Write a whole number, e.g. 3", "填写整数，例如 3";
    /// What to write for a true/false parameter.
    hint_boolean: "Write true or false", "填写 true 或 false";
    /// A secret parameter: the wizard asks for the variable that holds it.
    apps_secret: "{} is a secret: type the name of the environment variable that holds it (e.g. {}); the answer file keeps only that name. Export it before ferry runs: read -rs VAR; export VAR",
                 "{} 是机密参数：请输入保存它的环境变量名（如 {}）；应答文件只记录变量名。运行 ferry 前先导出：read -rs VAR; export VAR";

    // License.
    /// Intro.
    license_intro: "The license is activated on site with no network: export the activation request (a file, or a QR code for a phone), get the license from the vendor, then load it here.",
                   "许可证在现场离线激活：导出激活请求（文件，或手机扫描的二维码），从厂商获取许可证后在此加载。";
    /// Step 1.
    license_request: "1. Press x to export this site's activation request from the hosts' checks (r then shows a QR code for a phone), or run:",
                     "1. 按 x 根据主机检查结果导出本站点的激活请求（之后按 r 显示二维码供手机扫描），或运行：";
    /// Steps 2 and 3.
    license_steps: "2. Send the request file to the vendor. 3. Name the license file they return below: the install activates it on every host before the apps.",
                   "2. 将请求文件发给厂商。3. 在下方填写厂商返回的许可证文件：安装会在部署应用前在每台主机上激活它。";
    /// No hosts to fingerprint.
    license_export_no_hosts: "No hosts yet: add them on the Hosts screen; the request is made from their fingerprints.",
                              "尚无主机：请先在“主机”屏添加；请求由各主机的指纹生成。";
    /// A host without a finished check of its current entry.
    license_export_unchecked: "Host {} is not checked yet: wait for its check (Hosts screen shows it), then press x again.",
                              "主机 {} 尚未检查完成：请等待检查结束（见“主机”屏），再按 x。";
    /// A host whose fingerprint could not be read.
    license_export_unread: "Host {}'s fingerprint could not be read ({}): fix the host on the Hosts screen, then press x again.",
                           "无法读取主机 {} 的指纹（{}）：请在“主机”屏修正后再按 x。";
    /// The activation record could not be kept.
    license_export_state: "Cannot keep the activation record in {}: {}; set the activation records directory below to one you can write.",
                          "无法在 {} 保存激活记录：{}；请将下方的激活记录目录设为可写目录。";
    /// The request was written.
    license_exported: "Request written to {} (mode 0600): send it to the vendor; r shows it as a QR code for a phone.",
                      "请求已写入 {}（权限 0600）：发送给厂商；按 r 显示二维码供手机扫描。";
    /// r before x.
    license_qr_first: "Press x first to export the request; r then shows it as a QR code.",
                      "请先按 x 导出请求；之后按 r 显示二维码。";
    /// The terminal is too small for the code.
    license_qr_small: "The QR code needs a terminal of {} columns by {} rows; this one is {} by {}. Enlarge it (or use the request file). Any key goes back.",
                      "二维码需要 {} 列 × {} 行的终端；当前为 {} × {}。请放大终端（或使用请求文件）。按任意键返回。";
    /// The request does not fit a QR code.
    license_qr_too_long: "The request does not fit a QR code ({}): carry the request file instead. Any key goes back.",
                         "请求过长，无法生成二维码（{}）：请改用请求文件。按任意键返回。";
    /// Field.
    field_license_file: "License file (empty: none)", "许可证文件（留空：不使用）";
    /// Field.
    field_license_state: "Activation records directory", "激活记录目录";
    /// No license named.
    license_none: "No license named: the install runs without one; an app that needs a license feature is refused at review.",
                  "未指定许可证：安装可在无许可证时进行；需要许可证功能的应用会在审查时被拒绝。";
    /// What a license grants: id, customer, last day, nodes, modules.
    license_grants: "License {} for {}: valid until {}, up to {} nodes; grants: {}",
                    "许可证 {}（{}）：有效期至 {}，最多 {} 个节点；授予：{}";
    /// A license that cannot be read.
    license_problem: "This license cannot be opened here: {}", "无法在此打开该许可证：{}";

    // Review.
    /// Intro.
    review_intro: "What the install will change on each host, exactly as `ferry plan` shows it. Nothing has changed yet.",
                  "安装将在每台主机上做的更改，与 `ferry plan` 的输出完全相同。目前尚未做任何更改。";
    /// Planning.
    review_planning: "surveying the hosts and planning ({} of {} surveyed)...", "正在检查主机并生成计划（已检查 {}/{}）...";
    /// Failed.
    review_failed: "planning failed: {}", "生成计划失败：{}";
    /// Keys.
    review_keys: "Enter install  r plan again  Up/Down scroll", "回车 开始安装  r 重新生成计划  上/下 滚动";
    /// Not all hosts clear.
    review_blocked: "Some hosts are blocked or unreachable: they will be left as they are.", "部分主机被阻止或不可达：它们将保持原样。";

    // Run.
    /// Column.
    col_phase_survey: "SURVEY", "检查";
    /// Status line.
    run_running: "run {}: {} of {} hosts finished", "运行 {}：{}/{} 台主机已完成";
    /// Before the run id is known.
    run_starting: "locking and planning the hosts...", "正在锁定主机并生成计划...";
    /// Log title.
    run_log: "Log of {}", "{} 的日志";
    /// Reason title.
    run_reason: "Why: {}", "原因：{}";
    /// What to do.
    run_fix: "What to do: {}", "处理方法：{}";
    /// Generic fix for a failed host.
    run_fix_failed: "its changes were rolled back; read its log ({}), fix the cause, and install again (hosts already done are skipped)",
                    "其更改已回滚；查看日志（{}），排除原因后重新安装（已完成的主机会被跳过）";
    /// The run failed to start.
    run_error: "the install stopped: {}", "安装中止：{}";
    /// Keys.
    run_keys: "Up/Down select host  PgDn results", "上/下 选择主机  PgDn 查看结果";

    // Done.
    /// Success.
    done_ok: "Every host is installed.", "所有主机均已安装完成。";
    /// Partial.
    done_partial: "The install finished with problems: {} of {} hosts ok.", "安装结束但有问题：{}/{} 台主机成功。";
    /// Where things are.
    done_logs: "Journal and logs: {} (each host's log: HOST.log)", "日志与操作记录：{}（每台主机的日志：主机名.log）";
    /// Where things are.
    done_answers: "Answer file (repeats this install unattended): {}", "应答文件（可无人值守重复本次安装）：{}";
    /// Unattended command.
    done_repeat: "Next site: ferry install --answers {} --yes", "下一个现场：ferry install --answers {} --yes";
    /// The cluster's kubeconfig.
    done_kubeconfig: "kubeconfig: {0} (try: KUBECONFIG={0} kubectl get nodes)", "kubeconfig：{0}（试用：KUBECONFIG={0} kubectl get nodes）";
    /// No cluster in this answer file.
    done_no_cluster: "kubeconfig: none: this answer file installs no Kubernetes (cluster.distribution = \"none\")", "kubeconfig：无：此应答文件不安装 Kubernetes（cluster.distribution = \"none\"）";
    /// The cluster phase did not run or did not finish.
    done_no_kubeconfig: "kubeconfig: none yet: the cluster is set up once every host is installed and its nodes are Ready; install again after fixing the cause",
                        "kubeconfig：暂无：所有主机安装完成且节点就绪后才会建立集群；排除原因后重新安装";
    /// Title of a failed host's reason.
    done_why: "why", "原因";
    /// License.
    done_license: "License: see `ferry license status`", "许可证：见 `ferry license status`";
    /// Keys.
    done_keys: "Up/Down scroll  Ctrl-Q leave", "上/下 滚动  Ctrl-Q 退出";
    /// Not run yet.
    done_not_run: "Nothing has been installed yet: go to Review and press Enter.", "尚未安装任何内容：请到“确认”屏按回车。";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_picks_chinese_only_for_zh_and_the_flag_wins() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            Lang::choose(None, env(&[("LANG", "zh_CN.UTF-8")])),
            Lang::Zh
        );
        assert_eq!(
            Lang::choose(None, env(&[("LANG", "en_US.UTF-8")])),
            Lang::En
        );
        assert_eq!(Lang::choose(None, env(&[])), Lang::En);
        // LC_ALL outranks LANG.
        assert_eq!(
            Lang::choose(None, env(&[("LC_ALL", "C"), ("LANG", "zh_CN.UTF-8")])),
            Lang::En
        );
        assert_eq!(
            Lang::choose(Some(LangArg::Zh), env(&[("LANG", "C")])),
            Lang::Zh
        );
    }

    #[test]
    fn fill_puts_arguments_in_order() {
        assert_eq!(fill("step {}/{}", &[&3, &8]), "step 3/8");
        assert_eq!(fill("第 {}/{} 步", &[&3, &8]), "第 3/8 步");
        assert_eq!(fill("{} and {}", &[&"a"]), "a and {}");
        assert_eq!(fill("从 {1} 导入 {0}", &[&3, &"f"]), "从 f 导入 3");
    }
}
