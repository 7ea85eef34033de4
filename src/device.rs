//! Run-time choice of a Burn device among the backends compiled in (cargo features).

use burn::tensor::Device;

/// The backends this build was compiled with, in order of preference for the default.
pub const COMPILED: &[&str] = &[
    #[cfg(feature = "flex")]
    "flex",
    #[cfg(feature = "ndarray")]
    "ndarray",
    #[cfg(feature = "wgpu")]
    "wgpu",
    #[cfg(feature = "cuda")]
    "cuda",
];

/// Every backend name sequent knows.
pub const KNOWN: &[&str] = &["flex", "ndarray", "wgpu", "cuda"];

/// The default device: `flex`, the faster of the two CPU backends on the reference workload
/// (see the README), else the first backend compiled in.
pub fn default_name() -> &'static str {
    COMPILED.first().copied().unwrap_or("none")
}

/// The device called `name`: `flex`, `ndarray`, `wgpu` or `cuda` (the default adapter / GPU),
/// `wgpu:N` / `cuda:N` (the `N`-th discrete GPU wgpu sees / CUDA device `N`), or
/// `ws://HOST:PORT[/N]` (device `N`, default 0, of a `sequent serve` on that host; connected
/// here); a one-line error naming the backends this build has otherwise.
#[allow(deprecated, unreachable_code)]
pub fn parse(name: &str) -> Result<Device, String> {
    if let Some(address) = name.strip_prefix("ws://") {
        return remote(address);
    }
    let (backend, index) = match name.split_once(':') {
        Some((backend, index)) => match index.parse::<usize>() {
            Ok(index) if matches!(backend, "wgpu" | "cuda") => (backend, Some(index)),
            _ => {
                return Err(format!(
                    "device `{name}`: an index goes after wgpu or cuda only, as `cuda:1`"
                ));
            }
        },
        None => (name, None),
    };
    let missing = || {
        if KNOWN.contains(&backend) {
            format!(
                "device `{name}` is not compiled into this build (rebuild with `--features {backend}`); available: {}",
                COMPILED.join(", ")
            )
        } else {
            format!(
                "unknown device `{name}`; expected one of: {}",
                COMPILED.join(", ")
            )
        }
    };
    match (backend, index) {
        #[cfg(feature = "flex")]
        ("flex", None) => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        ("ndarray", None) => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        ("wgpu", None) => sequent_models::device::wgpu().map_err(|e| e.to_string()),
        #[cfg(feature = "wgpu")]
        ("wgpu", Some(i)) => Ok(Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(i))),
        #[cfg(feature = "cuda")]
        ("cuda", None) => Ok(Device::cuda(burn::tensor::DeviceIndex::Default)),
        #[cfg(feature = "cuda")]
        ("cuda", Some(i)) => Ok(Device::cuda(i)),
        _ => Err(missing()),
    }
}

/// The devices of a comma-separated list such as `cuda:0,cuda:1` or `flex,flex` (a CPU device
/// repeated trains several replicas on the one CPU), each parsed by [`parse`].
pub fn parse_list(names: &[String]) -> Result<Vec<Device>, String> {
    if names.is_empty() {
        return Err("--devices needs at least one device".into());
    }
    names.iter().map(|n| parse(n.trim())).collect()
}

/// Device `N` of the server at `HOST:PORT[/N]` (Burn's remote backend over WebSocket), connected.
#[cfg(feature = "remote")]
fn remote(address: &str) -> Result<Device, String> {
    let (host, index) = match address.rsplit_once('/') {
        Some((host, index)) => (
            host,
            index.parse::<usize>().map_err(|_| {
                format!("remote device `ws://{address}`: `{index}` is not an index")
            })?,
        ),
        None => (address, 0),
    };
    let server = burn::tensor::remote::RemoteHost::websocket(&format!("ws://{host}"));
    Device::remote_options(&server)
        .device_index(index)
        .init()
        .map_err(|e| format!("remote device `ws://{address}`: {e}").replace('\n', " "))
}

#[cfg(not(feature = "remote"))]
fn remote(address: &str) -> Result<Device, String> {
    Err(format!(
        "remote device `ws://{address}` needs a build with remote devices (`--features remote`)"
    ))
}

/// Serves `devices` to remote trainers on TCP `port` of every interface (0: a free port), until
/// the process is stopped (Ctrl+C or SIGTERM); `ready` is told the port once it is bound.
#[cfg(feature = "remote")]
pub fn serve(port: u16, devices: Vec<Device>, ready: impl FnOnce(u16)) -> Result<(), String> {
    use burn::tensor::server::{RemoteServer, WebSocketTransport};
    let listener = std::net::TcpListener::bind(("0.0.0.0", port))
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?.port();
    ready(bound);
    RemoteServer::new(devices)
        .serve(WebSocketTransport::from_listener(listener))
        .map_err(|e| format!("serving on port {bound}: {e}").replace('\n', " "))
}

/// Without remote devices in the build: the error saying so.
#[cfg(not(feature = "remote"))]
pub fn serve(_port: u16, _devices: Vec<Device>, _ready: impl FnOnce(u16)) -> Result<(), String> {
    Err("`sequent serve` needs a build with remote devices (`--features remote`)".into())
}
