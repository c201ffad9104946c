//! systemd units for ferry's services, used where PID 1 is systemd on the real root.

use crate::install::actions::ServiceSpec;
use std::io;
use std::process::Command;

pub fn unit_name(name: &str) -> String {
    format!("ferry-{name}.service")
}

pub fn unit_path(name: &str) -> String {
    format!("/etc/systemd/system/{}", unit_name(name))
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
        exec = spec.argv.join(" ")
    )
}

pub fn ensure(spec: &ServiceSpec) -> io::Result<()> {
    std::fs::write(unit_path(&spec.name), unit(spec))?;
    run(&["systemctl", "daemon-reload"])?;
    run(&["systemctl", "enable", "--now", &unit_name(&spec.name)])
}

pub fn stop(name: &str) -> io::Result<()> {
    let _ = run(&["systemctl", "disable", "--now", &unit_name(name)]);
    let _ = std::fs::remove_file(unit_path(name));
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
