//! systemd units for ferry's services, used where PID 1 is systemd on the real root.
//! k3s keeps the unit names its own install.sh uses (`k3s`, `k3s-agent`), so operators
//! who know k3s find it where they expect; ferry's own services are `ferry-<name>`.

use crate::engine::ServiceSpec;
use crate::host::HostPath;
use std::io;
use std::process::Command;

pub fn unit_name(name: &str) -> String {
    if name == "k3s" || name == "k3s-agent" {
        format!("{name}.service")
    } else {
        format!("ferry-{name}.service")
    }
}

pub fn unit_path(name: &str) -> HostPath {
    HostPath::new(format!("/etc/systemd/system/{}", unit_name(name)))
        .expect("service names are plain words")
}

/// The unit text for a service.
pub fn unit(spec: &ServiceSpec) -> String {
    let env: String = spec
        .env
        .iter()
        .map(|(k, v)| format!("Environment=\"{k}={v}\"\n"))
        .collect();
    format!(
        "# Written by ferry; removed by `delivery.run reset`.\n[Unit]\nDescription=ferry {name}\nAfter=network-online.target\nWants=network-online.target\n\n\
         [Service]\nType=simple\n{env}ExecStart={exec}\nRestart=always\nRestartSec=2\nLimitNOFILE=1048576\nDelegate=yes\nKillMode=process\n\n\
         [Install]\nWantedBy=multi-user.target\n",
        name = spec.name,
        exec = spec
            .argv
            .iter()
            .map(|a| crate::k3s::unit::systemd_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

pub fn stop(name: &str) -> io::Result<()> {
    let _ = run(&["systemctl", "disable", "--now", &unit_name(name)]);
    run(&["systemctl", "daemon-reload"])
}

fn run(argv: &[&str]) -> io::Result<()> {
    let st = Command::new(argv[0]).args(&argv[1..]).status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{} failed: {st}", argv.join(" "))))
    }
}
