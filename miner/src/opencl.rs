//! OpenCL: the devices there are, and the host side of `kernels/sha256d.cl`.
//!
//! A [`GpuSearcher`] owns one device's built kernel (with its queue) and candidate buffers.
//! [`GpuSearcher::search`] runs one launch over a nonce range for one version of a
//! [`Prepared`] job and returns the nonces that passed the kernel's filter; the caller
//! re-checks each with the reference sha256d, exactly as for the CPU backends.
//!
//! Errors are values, never panics: no OpenCL platform, a kernel that does not build (with
//! the compiler's log), a device that fails mid-run.

use ocl::core::{self, DeviceInfo as ClDeviceInfo, DeviceInfoResult, PlatformInfo};
use ocl::prm::Uint4;
use ocl::{Buffer, Context, Device, Kernel, Platform, Program, Queue, flags};

use crate::hash::Prepared;

/// The kernel source, compiled at run time for each device (see [`program_source`]).
pub const SOURCE: &str = include_str!("../../kernels/sha256d.cl");

/// The source as compiled: the round constants of the CPU backends, then the kernel.
pub fn program_source() -> String {
    let k: Vec<String> = crate::hash::sha::K
        .iter()
        .map(|k| format!("0x{k:08x}u"))
        .collect();
    format!("__constant uint K[64] = {{{}}};\n{SOURCE}", k.join(", "))
}

/// Candidates one launch can report before the launch is re-scanned on the CPU.
pub const CAPACITY: u32 = 1 << 16;

/// Work-group size. Fixed, so that a driver that specialises the kernel per work-group
/// size (PoCL does) compiles it once; launches are rounded up to a multiple.
pub const GROUP: usize = 64;

/// Why OpenCL could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No OpenCL platform (no driver or ICD loader entry).
    #[error(
        "no OpenCL platform: install the GPU's OpenCL driver (or pocl-opencl-icd for a CPU device) and the ICD loader (ocl-icd-libopencl1)"
    )]
    NoPlatform,
    /// `--gpu` found OpenCL devices, but none of GPU type.
    #[error(
        "no OpenCL GPU found; pick another OpenCL device with --gpu-devices N (see --list-devices)"
    )]
    NoGpu,
    /// The index is not in `miner --list-devices`.
    #[error("OpenCL device {0} does not exist (see `miner --list-devices`)")]
    NoSuchDevice(usize),
    /// The kernel did not compile for a device.
    #[error("the sha256d kernel does not build on {device}:\n{log}")]
    Build {
        /// The device.
        device: String,
        /// The compiler's output.
        log: String,
    },
    /// Any other OpenCL failure (a lost device, out of resources).
    #[error("OpenCL on {device}: {detail}")]
    Device {
        /// The device.
        device: String,
        /// What the runtime said.
        detail: String,
    },
}

/// A device as `--list-devices` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSummary {
    /// Index across all platforms, as `--gpu-devices` takes it.
    pub index: usize,
    /// The platform's name (NVIDIA CUDA, AMD Accelerated Parallel Processing, Portable
    /// Computing Language...).
    pub platform: String,
    /// The device's name.
    pub name: String,
    /// GPU, CPU or accelerator.
    pub kind: String,
    /// Compute units.
    pub compute_units: u32,
    /// Global memory, bytes.
    pub memory: u64,
    /// PCI address `dddd:bb:dd.f`, where the driver tells it (finds the sensors).
    pub pci: Option<String>,
}

/// Every OpenCL device of every platform, in a stable order.
pub fn devices() -> Result<Vec<(DeviceSummary, Platform, Device)>, GpuError> {
    // The ICD loader's first platform query is not safe to race (two threads at once can
    // see no platform at all), so discovery takes turns.
    static DISCOVERY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = DISCOVERY.lock().unwrap_or_else(|p| p.into_inner());
    // `Platform::list` panics without a platform; the core call returns an error instead.
    let ids = core::get_platform_ids().map_err(|_| GpuError::NoPlatform)?;
    let mut out = Vec::new();
    for id in ids {
        let platform = Platform::new(id);
        let platform_name = core::get_platform_info(platform, PlatformInfo::Name)
            .map(|i| i.to_string())
            .unwrap_or_else(|_| "unknown platform".into());
        let Ok(list) = Device::list_all(platform) else {
            continue;
        };
        for device in list {
            let name = device.name().unwrap_or_else(|_| "unknown device".into());
            let compute_units = match device.info(ClDeviceInfo::MaxComputeUnits) {
                Ok(DeviceInfoResult::MaxComputeUnits(n)) => n,
                _ => 0,
            };
            let memory = match device.info(ClDeviceInfo::GlobalMemSize) {
                Ok(DeviceInfoResult::GlobalMemSize(n)) => n,
                _ => 0,
            };
            let kind = match device.info(ClDeviceInfo::Type) {
                Ok(DeviceInfoResult::Type(t)) if t.contains(flags::DEVICE_TYPE_GPU) => "GPU",
                Ok(DeviceInfoResult::Type(t)) if t.contains(flags::DEVICE_TYPE_CPU) => "CPU",
                Ok(DeviceInfoResult::Type(t)) if t.contains(flags::DEVICE_TYPE_ACCELERATOR) => {
                    "accelerator"
                }
                _ => "other",
            };
            out.push((
                DeviceSummary {
                    index: out.len(),
                    platform: platform_name.clone(),
                    name,
                    kind: kind.into(),
                    compute_units,
                    memory,
                    pci: pci_address(&device),
                },
                platform,
                device,
            ));
        }
    }
    if out.is_empty() {
        return Err(GpuError::NoPlatform);
    }
    Ok(out)
}

/// The device's PCI address, from whichever query its driver answers: the Khronos
/// `cl_khr_pci_bus_info`, NVIDIA's `cl_nv_device_attribute_query` or AMD's
/// `cl_amd_device_attribute_query`. `None` for devices without one (PoCL's CPU device).
fn pci_address(device: &Device) -> Option<String> {
    const PCI_BUS_INFO_KHR: u32 = 0x410F;
    const PCI_BUS_ID_NV: u32 = 0x4008;
    const PCI_SLOT_ID_NV: u32 = 0x4009;
    const PCI_DOMAIN_ID_NV: u32 = 0x400A;
    const TOPOLOGY_AMD: u32 = 0x4037;
    const TOPOLOGY_TYPE_PCIE_AMD: u32 = 1;
    let raw = |code: u32| core::get_device_info_raw(device, code).ok();
    let word = |b: &[u8], i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(
            b.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let format = |domain: u32, bus: u32, dev: u32, function: u32| {
        format!("{domain:04x}:{bus:02x}:{dev:02x}.{function:x}")
    };
    // { domain, bus, device, function }, four cl_uint.
    if let Some(b) = raw(PCI_BUS_INFO_KHR)
        && let (Some(d), Some(bus), Some(dev), Some(f)) =
            (word(&b, 0), word(&b, 1), word(&b, 2), word(&b, 3))
    {
        return Some(format(d, bus, dev, f));
    }
    // Bus and slot (device << 3 | function); the domain only on newer drivers.
    if let (Some(bus), Some(slot)) = (
        raw(PCI_BUS_ID_NV).and_then(|b| word(&b, 0)),
        raw(PCI_SLOT_ID_NV).and_then(|b| word(&b, 0)),
    ) {
        let domain = raw(PCI_DOMAIN_ID_NV).and_then(|b| word(&b, 0)).unwrap_or(0);
        return Some(format(domain, bus, slot >> 3, slot & 7));
    }
    // A union: { cl_uint type; cl_char unused[17]; cl_char bus, device, function }.
    if let Some(b) = raw(TOPOLOGY_AMD)
        && word(&b, 0) == Some(TOPOLOGY_TYPE_PCIE_AMD)
        && b.len() >= 24
    {
        return Some(format(0, b[21].into(), b[22].into(), b[23].into()));
    }
    None
}

/// Opens the devices a user asked for: `indexes` (from `--list-devices`) if any, else with
/// `all_gpus` every device of GPU type; nothing when neither is asked.
pub fn open_selected(all_gpus: bool, indexes: &[usize]) -> Result<Vec<GpuSearcher>, GpuError> {
    if !indexes.is_empty() {
        return indexes.iter().map(|&i| GpuSearcher::open(i)).collect();
    }
    if !all_gpus {
        return Ok(Vec::new());
    }
    let gpus: Vec<usize> = devices()?
        .iter()
        .filter(|(d, _, _)| d.kind == "GPU")
        .map(|(d, _, _)| d.index)
        .collect();
    if gpus.is_empty() {
        return Err(GpuError::NoGpu);
    }
    gpus.into_iter().map(GpuSearcher::open).collect()
}

/// The `--list-devices` table.
pub fn device_table() -> Result<String, GpuError> {
    let mut out = String::from(
        "index  platform / device                              type   units  memory     \
         PCI           sensors\n",
    );
    for (d, _, _) in devices()? {
        let sensors = crate::sensors::Sensors::for_device(d.pci.as_deref());
        out.push_str(&format!(
            "{:>5}  {:<46} {:<6} {:>5}  {:>6} MiB {:<13} {}\n",
            d.index,
            format!("{} / {}", d.platform, d.name),
            d.kind,
            d.compute_units,
            d.memory >> 20,
            d.pci.as_deref().unwrap_or("-"),
            sensors.source(),
        ));
    }
    Ok(out)
}

/// Launches a device may have queued at once: while the host re-checks one launch's
/// candidates and enqueues the next, the device is already hashing.
pub const DEPTH: usize = 2;

/// Words read back after every launch: the counter and the first candidates. More
/// candidates (rare) are read in a second call.
const FIRST_READ: usize = 64;

/// One launch's own candidate buffer and the host memory its results are read into.
#[derive(Debug)]
struct Slot {
    out: Buffer<u32>,
    head: Vec<u32>,
    busy: bool,
}

/// A launch in flight, from [`GpuSearcher::submit`] to [`GpuSearcher::finish`].
#[derive(Debug)]
pub struct Pending {
    slot: usize,
    done: ocl::Event,
}

/// One device ready to search.
#[derive(Debug)]
pub struct GpuSearcher {
    /// The device.
    pub summary: DeviceSummary,
    kernel: Kernel,
    slots: Vec<Slot>,
    /// Launches left before [`GpuSearcher::fail_after`] makes the device fail.
    fail_after: Option<u64>,
}

impl Drop for GpuSearcher {
    fn drop(&mut self) {
        // A searcher can be dropped with launches in flight (an error mid-span, shutdown):
        // their non-blocking reads still target the slots' host memory, so wait for the
        // queue first. If the device cannot even finish (lost), leak that memory rather
        // than free it under a transfer.
        if !self.slots.iter().any(|s| s.busy) {
            return;
        }
        let finished = self
            .kernel
            .default_queue()
            .is_some_and(|q| q.finish().is_ok());
        if !finished {
            for slot in &mut self.slots {
                if slot.busy {
                    std::mem::forget(std::mem::take(&mut slot.head));
                }
            }
        }
    }
}

impl GpuSearcher {
    /// Makes every launch after the next `launches` fail as a lost device's would, so tests
    /// can check what the engine does when a GPU falls off the bus (PoCL never does).
    #[doc(hidden)]
    pub fn fail_after(&mut self, launches: u64) {
        self.fail_after = Some(launches);
    }

    /// Opens device `index` of [`devices`] and builds the kernel for it.
    pub fn open(index: usize) -> Result<GpuSearcher, GpuError> {
        let (summary, platform, device) = devices()?
            .into_iter()
            .nth(index)
            .ok_or(GpuError::NoSuchDevice(index))?;
        let name = summary.name.clone();
        let fail = |e: ocl::Error| GpuError::Device {
            device: name.clone(),
            detail: e.to_string(),
        };
        let context = Context::builder()
            .platform(platform)
            .devices(device)
            .build()
            .map_err(fail)?;
        let queue = Queue::new(&context, device, None).map_err(fail)?;
        let program = Program::builder()
            .src(program_source())
            .devices(device)
            .cmplr_opt("-cl-std=CL1.2")
            .build(&context)
            .map_err(|e| GpuError::Build {
                device: name.clone(),
                log: e.to_string(),
            })?;
        let mut slots = Vec::new();
        for _ in 0..DEPTH {
            let out = Buffer::<u32>::builder()
                .queue(queue.clone())
                .flags(flags::MEM_READ_WRITE)
                .len(1 + CAPACITY as usize)
                .build()
                .map_err(fail)?;
            slots.push(Slot {
                out,
                head: vec![0; 1 + FIRST_READ],
                busy: false,
            });
        }
        let kernel = Kernel::builder()
            .program(&program)
            .name("sha256d_search")
            .queue(queue.clone())
            .global_work_size(1)
            .arg(0u32)
            .arg(Uint4::zero())
            .arg(Uint4::zero())
            .arg(Uint4::zero())
            .arg(Uint4::zero())
            .arg(Uint4::zero())
            .arg(0u32)
            .arg(0u32)
            .arg(CAPACITY)
            .arg(&slots[0].out)
            .build()
            .map_err(fail)?;
        Ok(GpuSearcher {
            summary,
            kernel,
            slots,
            fail_after: None,
        })
    }

    /// The most nonces one launch may cover for this filter, so that the candidates
    /// expected (count x (target_top + 1) / 2^32) stay within half the buffer.
    pub fn max_launch(target_top: u32) -> u32 {
        let pass = (u64::from(target_top) + 1).max(1);
        let limit = (u64::from(CAPACITY) / 2) << 32;
        (limit / pass).clamp(1024, 1 << 30) as u32
    }

    /// Turns an OpenCL error into this device's error.
    fn fail(&self) -> impl Fn(ocl::Error) -> GpuError + use<> {
        let device = self.summary.name.clone();
        move |e| GpuError::Device {
            device: device.clone(),
            detail: e.to_string(),
        }
    }

    /// Hashes nonces `start .. start + count` (wrapping) for version `version` of `job`
    /// and returns the nonces that passed the filter, or `None` if more passed than the
    /// buffer holds (the caller scans that range on the CPU instead). One launch, waited
    /// for; [`GpuSearcher::submit`] and [`GpuSearcher::finish`] overlap launches.
    pub fn search(
        &mut self,
        job: &Prepared,
        version: usize,
        start: u32,
        count: u32,
    ) -> Result<Option<Vec<u32>>, GpuError> {
        let pending = self.submit(job, version, start, count)?;
        self.finish(pending)
    }

    /// Whether another launch can be submitted before one is finished.
    pub fn has_free_slot(&self) -> bool {
        self.slots.iter().any(|s| !s.busy)
    }

    /// Queues a launch (and the read of its results) without waiting for it. At most
    /// [`DEPTH`] may be pending; each must be given to [`GpuSearcher::finish`].
    pub fn submit(
        &mut self,
        job: &Prepared,
        version: usize,
        start: u32,
        count: u32,
    ) -> Result<Pending, GpuError> {
        if let Some(left) = self.fail_after.as_mut() {
            if *left == 0 {
                return Err(GpuError::Device {
                    device: self.summary.name.clone(),
                    detail: "the device stopped answering (failure injected by a test)".into(),
                });
            }
            *left -= 1;
        }
        let Some(slot) = self.slots.iter().position(|s| !s.busy) else {
            return Err(GpuError::Device {
                device: self.summary.name.clone(),
                detail: format!("more than {DEPTH} launches submitted at once"),
            });
        };
        let v = job
            .versions
            .get(version)
            .copied()
            .unwrap_or(job.versions[0]);
        let count = if job.versions.get(version).is_some() {
            count
        } else {
            0
        };
        let m = v.midstate;
        let r = v.rest;
        let args = [
            Uint4::new(m[0], m[1], m[2], m[3]),
            Uint4::new(m[4], m[5], m[6], m[7]),
            Uint4::new(v.a4, v.e4, r[0], r[1]),
            Uint4::new(r[2], r[3], r[4], r[5]),
            Uint4::new(job.w16, job.w17, job.c18, job.c19),
        ];
        let fail = self.fail();
        let out = &self.slots[slot].out;
        out.cmd().fill(0u32, Some(1)).enq().map_err(&fail)?;
        self.kernel.set_arg(0, start).map_err(&fail)?;
        for (i, arg) in args.into_iter().enumerate() {
            self.kernel.set_arg(1 + i, arg).map_err(&fail)?;
        }
        self.kernel.set_arg(6, job.target_top).map_err(&fail)?;
        self.kernel.set_arg(7, count).map_err(&fail)?;
        self.kernel.set_arg(9, out).map_err(&fail)?;
        if count > 0 {
            // SAFETY: every argument is set above with the kernel's types; `out` holds
            // 1 + CAPACITY words and the kernel writes index 1 + slot only when
            // slot < CAPACITY.
            unsafe {
                self.kernel
                    .cmd()
                    .global_work_size((count as usize).div_ceil(GROUP) * GROUP)
                    .local_work_size(GROUP)
                    .enq()
                    .map_err(&fail)?;
            }
        }
        let mut done = ocl::Event::empty();
        let Slot { out, head, .. } = &mut self.slots[slot];
        // SAFETY: a non-blocking read into `head`, which lives in `self.slots` and is
        // neither read, resized nor dropped until `finish` has waited for `done` (or, if
        // the searcher is dropped first, until `Drop` has finished the queue).
        unsafe {
            out.read(&mut head[..])
                .block(false)
                .enew(&mut done)
                .enq()
                .map_err(&fail)?;
        }
        self.slots[slot].busy = true;
        Ok(Pending { slot, done })
    }

    /// Waits for a launch by polling its event (sleeping between polls, so a driver that
    /// spins in its own wait does not burn a core) and returns its candidates, sorted, or
    /// `None` when they overflowed the buffer.
    pub fn finish(&mut self, pending: Pending) -> Result<Option<Vec<u32>>, GpuError> {
        let fail = self.fail();
        loop {
            if pending
                .done
                .is_complete()
                .map_err(|e| fail(ocl::Error::from(e)))?
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(250));
        }
        let slot = &self.slots[pending.slot];
        let n = slot.head[0];
        let result = if n > CAPACITY {
            None
        } else if n as usize <= FIRST_READ {
            let mut nonces = slot.head[1..=n as usize].to_vec();
            nonces.sort_unstable();
            Some(nonces)
        } else {
            let mut nonces = vec![0u32; n as usize];
            slot.out
                .read(&mut nonces[..])
                .offset(1)
                .enq()
                .map_err(&fail)?;
            nonces.sort_unstable();
            Some(nonces)
        };
        self.slots[pending.slot].busy = false;
        Ok(result)
    }
}
