//! GPU temperature, fan and power, where the platform exposes them.
//!
//! OpenCL has no such queries, so a device is found again by its PCI address
//! ([`crate::opencl::DeviceSummary::pci`]) in one of two places:
//!
//! - Linux hwmon under `/sys/bus/pci/devices/<address>/hwmon/`: the amdgpu driver (and
//!   Intel's) publish `temp1_input` (millidegrees C), `fan1_input` (RPM) and
//!   `power1_average` or `power1_input` (microwatts) there.
//! - NVIDIA's management library, `libnvidia-ml.so.1`, which the driver installs: loaded
//!   at run time, so the miner builds and runs where it is absent.
//!
//! A device found in neither (PoCL's CPU device, a GPU without a PCI address) reads as all
//! `None`; a reading that fails is `None` too, never an error for the miner.

use std::ffi::{CString, c_char, c_uint, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One reading of a device's sensors; `None` where the platform does not say.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// Core temperature, degrees Celsius.
    pub temperature_c: Option<f64>,
    /// Fan speed in RPM (hwmon).
    pub fan_rpm: Option<u32>,
    /// Fan speed as a percentage of its maximum (NVML).
    pub fan_percent: Option<u32>,
    /// Board power, watts.
    pub power_w: Option<f64>,
}

/// Where a device's sensors are read from.
pub enum Sensors {
    /// A hwmon directory of the device.
    Hwmon(PathBuf),
    /// NVML, by PCI bus id.
    Nvml(NvmlDevice),
    /// Nothing exposes this device's sensors.
    None,
}

impl Sensors {
    /// Finds the sensors of the device at PCI address `pci` (`dddd:bb:dd.f`).
    pub fn for_device(pci: Option<&str>) -> Sensors {
        let Some(pci) = pci else {
            return Sensors::None;
        };
        if let Some(dir) = hwmon_dir(Path::new("/sys/bus/pci/devices"), pci) {
            return Sensors::Hwmon(dir);
        }
        if let Some(device) = Nvml::get().and_then(|n| n.device(pci)) {
            return Sensors::Nvml(device);
        }
        Sensors::None
    }

    /// Reads the sensors now (a few file reads or library calls).
    pub fn read(&self) -> Reading {
        match self {
            Sensors::Hwmon(dir) => read_hwmon(dir),
            Sensors::Nvml(device) => device.read(),
            Sensors::None => Reading::default(),
        }
    }

    /// Where the readings come from, for `--list-devices`.
    pub fn source(&self) -> &'static str {
        match self {
            Sensors::Hwmon(_) => "hwmon",
            Sensors::Nvml(_) => "NVML",
            Sensors::None => "none",
        }
    }
}

/// hwmon drivers of CPU packages: Intel's, AMD's (and the zenpower module), and the
/// thermal zone ARM boards publish.
const CPU_HWMON: [&str; 4] = ["coretemp", "k10temp", "zenpower", "cpu_thermal"];

/// The CPU package's sensors: the first hwmon directory under `root` (normally
/// `/sys/class/hwmon`) whose driver `name` is a CPU's; `Sensors::None` if there is none
/// (a virtual machine usually has none).
pub fn cpu_sensors(root: &Path) -> Sensors {
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => return Sensors::None,
    };
    dirs.sort();
    dirs.into_iter()
        .find(|d| {
            std::fs::read_to_string(d.join("name")).is_ok_and(|n| CPU_HWMON.contains(&n.trim()))
        })
        .map_or(Sensors::None, Sensors::Hwmon)
}

/// The first hwmon directory of PCI device `pci` under `root` (normally
/// `/sys/bus/pci/devices`).
pub fn hwmon_dir(root: &Path, pci: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join(pci).join("hwmon"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter().next()
}

/// Reads the hwmon files of one device; a file that is missing or unreadable is `None`.
pub fn read_hwmon(dir: &Path) -> Reading {
    let number = |name: &str| -> Option<f64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
    };
    Reading {
        temperature_c: number("temp1_input").map(|m| m / 1000.0),
        fan_rpm: number("fan1_input").map(|r| r as u32),
        fan_percent: None,
        power_w: number("power1_average")
            .or_else(|| number("power1_input"))
            .map(|uw| uw / 1e6),
    }
}

// NVML, loaded at run time. Only the calls needed here, with the types of nvml.h.
type NvmlReturn = c_uint; // 0: NVML_SUCCESS
type NvmlHandle = *mut c_void;
type InitFn = unsafe extern "C" fn() -> NvmlReturn;
type HandleByBusIdFn = unsafe extern "C" fn(*const c_char, *mut NvmlHandle) -> NvmlReturn;
type TemperatureFn = unsafe extern "C" fn(NvmlHandle, c_uint, *mut c_uint) -> NvmlReturn;
type UintFn = unsafe extern "C" fn(NvmlHandle, *mut c_uint) -> NvmlReturn;

/// NVML_TEMPERATURE_GPU.
const NVML_TEMPERATURE_GPU: c_uint = 0;

/// The loaded library and the entry points used, initialised once per process.
struct Nvml {
    // Kept loaded for as long as the function pointers below are used (the process).
    _lib: libloading::Library,
    handle_by_bus_id: HandleByBusIdFn,
    temperature: TemperatureFn,
    fan_speed: UintFn,
    power_usage: UintFn,
}

/// One NVIDIA device's NVML handle.
pub struct NvmlDevice {
    nvml: &'static Nvml,
    handle: NvmlHandle,
}

// SAFETY: NVML is thread-safe by its documentation, and a device handle stays valid until
// nvmlShutdown, which this process never calls.
unsafe impl Send for NvmlDevice {}
// SAFETY: as above; the handle is only passed to NVML, never dereferenced here.
unsafe impl Sync for NvmlDevice {}

impl Nvml {
    fn get() -> Option<&'static Nvml> {
        static NVML: OnceLock<Option<Nvml>> = OnceLock::new();
        NVML.get_or_init(Nvml::load).as_ref()
    }

    fn load() -> Option<Nvml> {
        // SAFETY: loading NVIDIA's library runs its initialisers, which have no
        // preconditions; the symbols are looked up with the signatures of nvml.h.
        unsafe {
            let lib = libloading::Library::new("libnvidia-ml.so.1").ok()?;
            let init: InitFn = *lib.get::<InitFn>(b"nvmlInit_v2\0").ok()?;
            let handle_by_bus_id: HandleByBusIdFn =
                *lib.get(b"nvmlDeviceGetHandleByPciBusId_v2\0").ok()?;
            let temperature: TemperatureFn = *lib.get(b"nvmlDeviceGetTemperature\0").ok()?;
            let fan_speed: UintFn = *lib.get(b"nvmlDeviceGetFanSpeed\0").ok()?;
            let power_usage: UintFn = *lib.get(b"nvmlDeviceGetPowerUsage\0").ok()?;
            if init() != 0 {
                return None;
            }
            Some(Nvml {
                _lib: lib,
                handle_by_bus_id,
                temperature,
                fan_speed,
                power_usage,
            })
        }
    }

    fn device(&'static self, pci: &str) -> Option<NvmlDevice> {
        let bus_id = CString::new(pci).ok()?;
        let mut handle: NvmlHandle = std::ptr::null_mut();
        // SAFETY: a NUL-terminated string and a valid out pointer, as nvml.h asks.
        let rc = unsafe { (self.handle_by_bus_id)(bus_id.as_ptr(), &mut handle) };
        (rc == 0 && !handle.is_null()).then_some(NvmlDevice { nvml: self, handle })
    }
}

impl NvmlDevice {
    fn read(&self) -> Reading {
        let uint = |f: UintFn| {
            let mut v: c_uint = 0;
            // SAFETY: a handle from nvmlDeviceGetHandleByPciBusId and a valid out pointer.
            (unsafe { f(self.handle, &mut v) } == 0).then_some(v)
        };
        let mut t: c_uint = 0;
        // SAFETY: as above.
        let temp_ok =
            unsafe { (self.nvml.temperature)(self.handle, NVML_TEMPERATURE_GPU, &mut t) } == 0;
        Reading {
            temperature_c: temp_ok.then_some(f64::from(t)),
            fan_rpm: None,
            // Data-centre boards have no fan and answer NVML_ERROR_NOT_SUPPORTED.
            fan_percent: uint(self.nvml.fan_speed),
            power_w: uint(self.nvml.power_usage).map(|mw| f64::from(mw) / 1000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwmon_files_as_amdgpu_writes_them() {
        let root = tempfile::tempdir().unwrap();
        let pci = "0000:03:00.0";
        let dir = root.path().join(pci).join("hwmon").join("hwmon4");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("temp1_input"), "61000\n").unwrap();
        std::fs::write(dir.join("fan1_input"), "1450\n").unwrap();
        std::fs::write(dir.join("power1_average"), "187000000\n").unwrap();
        let found = hwmon_dir(root.path(), pci).unwrap();
        assert_eq!(found, dir);
        assert_eq!(
            read_hwmon(&found),
            Reading {
                temperature_c: Some(61.0),
                fan_rpm: Some(1450),
                fan_percent: None,
                power_w: Some(187.0),
            }
        );
        // Newer kernels have power1_input instead of power1_average; a missing fan is None.
        std::fs::remove_file(dir.join("power1_average")).unwrap();
        std::fs::remove_file(dir.join("fan1_input")).unwrap();
        std::fs::write(dir.join("power1_input"), "95500000").unwrap();
        let r = read_hwmon(&found);
        assert_eq!(r.power_w, Some(95.5));
        assert_eq!(r.fan_rpm, None);
        assert_eq!(hwmon_dir(root.path(), "0000:04:00.0"), None);
    }

    #[test]
    fn a_device_without_an_address_has_no_sensors() {
        assert_eq!(Sensors::for_device(None).read(), Reading::default());
    }
}
