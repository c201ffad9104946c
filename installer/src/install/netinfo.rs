//! The node's address: the IPv4 of the interface holding the default route (what other
//! nodes will reach), else the first non-loopback IPv4, else loopback.

use std::net::{IpAddr, Ipv4Addr};

pub fn default_node_ip() -> IpAddr {
    let route_if = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|s| {
            s.lines().skip(1).find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(1) == Some(&"00000000")).then(|| f[0].to_string())
            })
        });
    let addrs: Vec<(String, Ipv4Addr)> = nix::ifaddrs::getifaddrs()
        .map(|it| {
            it.filter_map(|a| {
                let ip = a.address?.as_sockaddr_in()?.ip();
                Some((a.interface_name, ip))
            })
            .collect()
        })
        .unwrap_or_default();
    if let Some(i) = route_if {
        if let Some((_, ip)) = addrs.iter().find(|(n, _)| *n == i) {
            return IpAddr::V4(*ip);
        }
    }
    addrs
        .iter()
        .find(|(_, ip)| !ip.is_loopback())
        .map(|(_, ip)| IpAddr::V4(*ip))
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}
