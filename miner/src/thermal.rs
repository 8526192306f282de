//! `--max-temp`: a device above the limit stops hashing until it has cooled 5 °C below
//! it. Each OpenCL device is judged by its own sensor; the CPU threads together by the CPU
//! package's (`sensors::cpu_sensors`). A worker without a readable temperature is never
//! held: the limit cannot be checked, and `--list-devices` and the API show `null` there.

use std::path::Path;

use crate::engine::Engine;
use crate::sensors::{Sensors, cpu_sensors};

/// Degrees below the limit a held device must reach before it hashes again (so it does not
/// flap at the limit).
pub const HYSTERESIS_C: f64 = 5.0;

/// The limit and the CPU package's sensor.
pub struct ThermalGuard {
    max_c: f64,
    cpu: Sensors,
    /// The CPU package's last reading.
    cpu_c: Option<f64>,
}

impl ThermalGuard {
    /// A guard at `max_c`, reading the CPU package under `hwmon_root` (normally
    /// `/sys/class/hwmon`).
    pub fn new(max_c: f64, hwmon_root: &Path) -> ThermalGuard {
        ThermalGuard {
            max_c,
            cpu: cpu_sensors(hwmon_root),
            cpu_c: None,
        }
    }

    /// The CPU package's temperature at the last check.
    pub fn cpu_temperature(&self) -> Option<f64> {
        self.cpu_c
    }

    /// Whether the CPU package can be read at all.
    pub fn reads_cpu(&self) -> bool {
        !matches!(self.cpu, Sensors::None)
    }

    /// Reads every sensor and holds or releases the workers; a line per change, for the log.
    pub fn check(&mut self, engine: &Engine) -> Vec<String> {
        let mut changes = Vec::new();
        self.cpu_c = self.cpu.read().temperature_c;
        for (worker, name) in engine.worker_names().iter().enumerate() {
            let own = engine.sensors(worker);
            let temperature = match own {
                Some(reading) => reading.temperature_c,
                // A CPU thread: the package's sensor.
                None => self.cpu_c,
            };
            let Some(t) = temperature else {
                continue;
            };
            let held = engine.is_held(worker);
            if !held && t > self.max_c && engine.hold(worker, true) {
                changes.push(format!(
                    "{name}: {t:.0} °C is above --max-temp {:.0} °C: paused until {:.0} °C",
                    self.max_c,
                    self.max_c - HYSTERESIS_C
                ));
            } else if held && t <= self.max_c - HYSTERESIS_C && engine.hold(worker, false) {
                changes.push(format!("{name}: cooled to {t:.0} °C: hashing again"));
            }
        }
        changes
    }
}
