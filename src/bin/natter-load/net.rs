//! `--net veth`: natter in a network namespace of its own, reached over a veth pair, as a
//! client on another machine would reach it.
//!
//! On loopback the kernel runs the receiving side of TCP on the sending core (the whole path
//! from `write` to the reader's wake-up is one call chain), so the server's CPU includes the
//! generator's receive path and the reverse. A veth pair hands every packet to its peer's
//! receive queue instead; with RPS pointed at the reader's core (`rps_cpus` of each side's
//! queue) the receiving work runs there, as a NIC's interrupt on each machine would put it.
//! What the server's core still does is its own half: sending (`tcp_sendmsg` down to the
//! veth) and receiving what the generator sends, acknowledgements included.
//!
//! natter allows development sign-in (which the generator signs people in with) only on a
//! loopback address, so the pair carries loopback addresses, which Linux routes over a device
//! other than `lo` when that device's `route_localnet` is on: natter listens on 127.N.0.1
//! inside the namespace (whose own `lo` stays down), the generator's side holds
//! 127.N.1.1–64, one source per connection in turn (`client::tcp_connect`, for the same
//! reason as on loopback), and on this side a route in the `local` table sends 127.N.0.0/16
//! to the pair rather than to `lo` (more specific than `lo`'s 127.0.0.0/8). N is 18 or the
//! next free one, so that natter-loads can run side by side. Everything
//! is removed when natter-load ends, on Ctrl-C too, and namespaces left by a natter-load that
//! was killed are removed by the next one.

use std::{
    net::Ipv4Addr,
    process::{Command, Stdio},
    sync::OnceLock,
};

/// The namespace and the pair, once set up.
pub struct Veth {
    /// `natter-load-<pid>`.
    pub ns: String,
    /// The pair's end in the namespace (`nln<pid>`) and outside it (`nlh<pid>`).
    inner: String,
    outer: String,
    /// The N of 127.N.0.0/16.
    net: u8,
}

static VETH: OnceLock<Veth> = OnceLock::new();

/// How many addresses the generator's side holds.
const SOURCES: u8 = 64;

const PREFIX: &str = "natter-load-";

/// The pair, when `--net veth` set one up.
pub fn veth() -> Option<&'static Veth> {
    VETH.get()
}

/// The source address for the `n`th connection to `target`, when the target is natter in
/// the namespace.
pub fn source_for(target: Ipv4Addr, n: u64) -> Option<Ipv4Addr> {
    let veth = veth()?;
    (target == veth.server_ip())
        .then(|| Ipv4Addr::new(127, veth.net, 1, 1 + (n % u64::from(SOURCES)) as u8))
}

/// Sets up the namespace and the pair (needs root and `ip`). With `pin`, receive work is
/// steered to the reader's core: the server's side to CPU 0, the generator's to CPU 1.
pub fn set_up(pin: bool) -> Result<&'static Veth, String> {
    remove_stale();
    let pid = std::process::id();
    let veth = Veth {
        ns: format!("{PREFIX}{pid}"),
        inner: format!("nln{pid}"),
        outer: format!("nlh{pid}"),
        net: free_net()?,
    };
    let (net, server) = (veth.net, veth.server_ip());
    // Registered first, so that a failure half-way is cleaned up too.
    let veth = VETH.get_or_init(|| veth);
    let (ns, inner, outer) = (&veth.ns, &veth.inner, &veth.outer);
    ip(&["netns", "add", ns])?;
    ip(&[
        "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns,
    ])?;
    std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{outer}/route_localnet"),
        "1",
    )
    .map_err(|e| format!("route_localnet on {outer}: {e}"))?;
    in_ns(
        ns,
        &format!("echo 1 > /proc/sys/net/ipv4/conf/{inner}/route_localnet"),
    )?;
    let mut batch: String = (1..=SOURCES)
        .map(|i| format!("addr add 127.{net}.1.{i}/16 dev {outer}\n"))
        .collect();
    batch.push_str(&format!(
        "link set {outer} up\nroute add 127.{net}.0.0/16 dev {outer} table local\n"
    ));
    ip_batch(None, &batch)?;
    ip_batch(
        Some(ns),
        &format!("addr add {server}/16 dev {inner}\nlink set {inner} up\n"),
    )?;
    // A namespace starts with the kernel's defaults; the server's listening and buffer
    // settings follow the machine's, as natter's own would.
    for key in [
        "net/core/somaxconn",
        "net/ipv4/tcp_max_syn_backlog",
        "net/ipv4/tcp_rmem",
        "net/ipv4/tcp_wmem",
    ] {
        if let Ok(value) = std::fs::read_to_string(format!("/proc/sys/{key}")) {
            in_ns(ns, &format!("echo '{}' > /proc/sys/{key}", value.trim()))?;
        }
    }
    if pin {
        // CPU masks: the server reads on CPU 0, the generator on CPU 1.
        in_ns(
            ns,
            &format!("echo 1 > /sys/class/net/{inner}/queues/rx-0/rps_cpus"),
        )?;
        std::fs::write(format!("/sys/class/net/{outer}/queues/rx-0/rps_cpus"), "2")
            .map_err(|e| format!("RPS on {outer}: {e}"))?;
    }
    Ok(veth)
}

impl Veth {
    /// What natter listens on inside the namespace.
    pub fn server_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, 0, 1)
    }
}

/// The first N from 18 that no address or route of this machine uses as 127.N.
fn free_net() -> Result<u8, String> {
    let out = Command::new("ip")
        .args(["-o", "route", "show", "table", "all"])
        .output()
        .map_err(|e| format!("ip route: {e}"))?;
    let routes = String::from_utf8_lossy(&out.stdout);
    (18..=250)
        .find(|n| !routes.contains(&format!("127.{n}.")))
        .ok_or_else(|| "no free 127.N.0.0/16".to_string())
}

/// Removes the namespace (and with it the pair), if one was set up.
pub fn tear_down() {
    if let Some(veth) = veth() {
        let _ = ip(&["netns", "del", &veth.ns]);
    }
}

/// The command prefix that runs a program in the namespace.
pub fn exec_prefix(veth: &Veth) -> [&str; 4] {
    ["ip", "netns", "exec", &veth.ns]
}

/// Namespaces of natter-loads that are no longer running (killed before they cleaned up).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if let Some(pid) = name.strip_prefix(PREFIX)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run(
        Command::new("ip").args(args),
        &format!("ip {}", args.join(" ")),
    )
}

/// `ip -batch -` with `commands` on its input, in namespace `ns` when given.
fn ip_batch(ns: Option<&str>, commands: &str) -> Result<(), String> {
    use std::io::Write;
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("ip: no stdin")?
        .write_all(commands.as_bytes())
        .map_err(|e| format!("ip: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip -batch: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// A shell command in the namespace (its own /sys and /proc/sys/net).
fn in_ns(ns: &str, script: &str) -> Result<(), String> {
    run(
        Command::new("ip").args(["netns", "exec", ns, "sh", "-c", script]),
        script,
    )
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}
