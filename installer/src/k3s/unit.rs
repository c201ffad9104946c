//! How k3s runs: a systemd unit where PID 1 is systemd, otherwise a supervised process with
//! the same argv (DESIGN §3: "the same code path otherwise").
//!
//! The unit is the one k3s's own `install.sh` writes (`create_systemd_service_file`,
//! github.com/k3s-io/k3s/blob/master/install.sh), line for line, so a ferry node behaves
//! like a node installed the documented way (docs.k3s.io/installation/airgap uses that
//! script with `INSTALL_K3S_SKIP_DOWNLOAD=true`):
//! - `Type=notify`: k3s reports readiness with sd_notify, so `systemctl start` returns once
//!   the node is up (install.sh's default `SYSTEMD_TYPE` for servers and agents alike).
//! - `KillMode=process`, `Delegate=yes`: stopping k3s must not kill the containers it
//!   started, and k3s manages its own cgroup subtree.
//! - `LimitNOFILE=1048576`, `LimitNPROC/LimitCORE/TasksMax=infinity`, `TimeoutStartSec=0`,
//!   `Restart=always`, `RestartSec=5s`.
//! - `ExecStartPre=-/sbin/modprobe br_netfilter` and `overlay` (the `-` lets them fail where
//!   modules are built in), and install.sh's check that `nm-cloud-setup.service` is not
//!   enabled (it is known to break k3s networking).
//! - Names as install.sh derives them: `k3s.service` for a server, `k3s-agent.service` for
//!   an agent.
//!
//! The only difference: `ExecStart` names `--config <path>` explicitly, where install.sh
//! relies on the default path. Flags and token live in the config file (see
//! [`super::config`]), so the unit holds no secret and is the same on every node.

/// `k3s server` or `k3s agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K3sCommand {
    Server,
    Agent,
}

impl K3sCommand {
    /// The k3s subcommand.
    pub fn as_str(self) -> &'static str {
        match self {
            K3sCommand::Server => "server",
            K3sCommand::Agent => "agent",
        }
    }

    /// The service name install.sh uses: `k3s` for a server, `k3s-agent` for an agent.
    pub fn service_name(self) -> &'static str {
        match self {
            K3sCommand::Server => "k3s",
            K3sCommand::Agent => "k3s-agent",
        }
    }

    /// `/etc/systemd/system/<service>.service`.
    pub fn unit_path(self) -> String {
        format!("/etc/systemd/system/{}.service", self.service_name())
    }
}

/// The argv that runs k3s: `[<binary>, "server"|"agent", "--config", <config>]`. The unit's
/// `ExecStart` and the supervised process both use it.
pub fn exec_argv(k3s_binary: &str, command: K3sCommand, config_path: &str) -> Vec<String> {
    vec![
        k3s_binary.to_string(),
        command.as_str().to_string(),
        "--config".to_string(),
        config_path.to_string(),
    ]
}

/// The systemd unit file's text.
pub fn systemd_unit(k3s_binary: &str, command: K3sCommand, config_path: &str) -> String {
    let exec = exec_argv(k3s_binary, command, config_path)
        .iter()
        .map(|a| systemd_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let service = command.service_name();
    format!(
        "# Written by ferry; the unit k3s's install.sh writes (https://get.k3s.io),\n\
         # with settings in {config_path} instead of on the command line.\n\
         [Unit]\n\
         Description=Lightweight Kubernetes\n\
         Documentation=https://k3s.io\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         EnvironmentFile=-/etc/default/%N\n\
         EnvironmentFile=-/etc/sysconfig/%N\n\
         EnvironmentFile=-/etc/systemd/system/{service}.service.env\n\
         KillMode=process\n\
         Delegate=yes\n\
         # Having non-zero Limit*s causes performance problems due to accounting overhead\n\
         # in the kernel. We recommend using cgroups to do container-local accounting.\n\
         LimitNOFILE=1048576\n\
         LimitNPROC=infinity\n\
         LimitCORE=infinity\n\
         TasksMax=infinity\n\
         TimeoutStartSec=0\n\
         Restart=always\n\
         RestartSec=5s\n\
         ExecStartPre=/bin/sh -xc '! /usr/bin/systemctl is-enabled --quiet nm-cloud-setup.service 2>/dev/null'\n\
         ExecStartPre=-/sbin/modprobe br_netfilter\n\
         ExecStartPre=-/sbin/modprobe overlay\n\
         ExecStart={exec}\n"
    )
}

/// One `ExecStart` argument: bare when it holds only characters systemd passes through
/// unchanged, else double-quoted with `\` and `"` escaped. `%` (specifiers) and `$`
/// (variable expansion) are doubled either way, since systemd expands them inside quotes
/// too (systemd.service(5), "Command lines"; systemd.unit(5), "Specifiers").
pub fn systemd_quote(arg: &str) -> String {
    let escaped = arg.replace('%', "%%").replace('$', "$$");
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,@".contains(c));
    if plain {
        return escaped;
    }
    let mut out = String::from("\"");
    for c in escaped.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `key=value` lines of one section, in order.
    fn section<'a>(unit: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
        let header = format!("[{name}]");
        let mut lines = unit.lines().skip_while(|l| *l != header).skip(1);
        let mut out = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with('[') {
                break;
            }
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            out.push(l.split_once('=').expect("key=value"));
        }
        out
    }

    fn get<'a>(s: &[(&'a str, &'a str)], key: &str) -> Vec<&'a str> {
        s.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    }

    #[test]
    fn server_unit_follows_install_sh() {
        let u = systemd_unit(
            "/usr/local/bin/k3s",
            K3sCommand::Server,
            "/etc/rancher/k3s/config.yaml",
        );
        let svc = section(&u, "Service");
        for (k, v) in [
            ("Type", "notify"),
            ("KillMode", "process"),
            ("Delegate", "yes"),
            ("LimitNOFILE", "1048576"),
            ("LimitNPROC", "infinity"),
            ("LimitCORE", "infinity"),
            ("TasksMax", "infinity"),
            ("TimeoutStartSec", "0"),
            ("Restart", "always"),
            ("RestartSec", "5s"),
        ] {
            assert_eq!(get(&svc, k), [v], "{k}\n{u}");
        }
        let pre = get(&svc, "ExecStartPre");
        assert!(pre.contains(&"-/sbin/modprobe br_netfilter"));
        assert!(pre.contains(&"-/sbin/modprobe overlay"));
        assert_eq!(
            get(&svc, "ExecStart"),
            ["/usr/local/bin/k3s server --config /etc/rancher/k3s/config.yaml"]
        );
        assert_eq!(
            get(&section(&u, "Install"), "WantedBy"),
            ["multi-user.target"]
        );
        assert_eq!(
            get(&section(&u, "Unit"), "After"),
            ["network-online.target"]
        );
    }

    #[test]
    fn agent_unit_runs_k3s_agent_under_its_install_sh_name() {
        let u = systemd_unit(
            "/opt/bin/k3s",
            K3sCommand::Agent,
            "/etc/rancher/k3s/config.yaml",
        );
        assert_eq!(
            get(&section(&u, "Service"), "ExecStart"),
            ["/opt/bin/k3s agent --config /etc/rancher/k3s/config.yaml"]
        );
        assert!(u.contains("EnvironmentFile=-/etc/systemd/system/k3s-agent.service.env"));
        assert_eq!(
            K3sCommand::Agent.unit_path(),
            "/etc/systemd/system/k3s-agent.service"
        );
        assert_eq!(
            K3sCommand::Server.unit_path(),
            "/etc/systemd/system/k3s.service"
        );
    }

    #[test]
    fn supervised_argv_matches_exec_start() {
        assert_eq!(
            exec_argv(
                "/usr/local/bin/k3s",
                K3sCommand::Server,
                "/etc/rancher/k3s/config.yaml"
            ),
            [
                "/usr/local/bin/k3s",
                "server",
                "--config",
                "/etc/rancher/k3s/config.yaml"
            ]
        );
    }

    #[test]
    fn unusual_paths_are_quoted_for_systemd() {
        assert_eq!(systemd_quote("/usr/local/bin/k3s"), "/usr/local/bin/k3s");
        assert_eq!(systemd_quote("/opt/my k3s/k3s"), "\"/opt/my k3s/k3s\"");
        assert_eq!(systemd_quote("/a%b$c"), "\"/a%%b$$c\"");
        assert_eq!(systemd_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(systemd_quote(""), "\"\"");
    }
}
