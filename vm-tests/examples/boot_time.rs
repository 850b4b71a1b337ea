//! Starts N VMs and prints how long it took until every one answered SSH, how (booted or
//! restored from the saved state: `FERRY_VM_RESTORE=0` boots), and each qemu's RSS and CPU time.
//! Used by benches/vm/run.sh.
//!
//! Usage: boot_time N [tcg|kvm] [hold]     or     boot_time probe-kvm
//! With `hold`, it prints how to log in and keeps the VMs until stdin reaches end of file.

use std::time::Duration;

use vm_tests::{Accel, Testbed, VmSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let first = args.next().unwrap_or_else(|| "1".into());
    if first == "probe-kvm" {
        match Testbed::probe_kvm(Duration::from_secs(90))? {
            Some(cpu) => println!("kvm_works=true cpu={cpu}"),
            None => println!("kvm_works=false"),
        }
        return Ok(());
    }
    let n: usize = first.parse()?;
    let accel = match args.next().as_deref() {
        Some("kvm") => Accel::Kvm,
        _ => Accel::Tcg,
    };
    let spec = VmSpec {
        accel,
        ..VmSpec::default()
    };
    let bed = Testbed::start(n, &spec)?;
    let rss: Vec<String> = bed
        .vms()
        .iter()
        .map(|vm| format!("{}", vm.rss_kib().unwrap_or(0) / 1024))
        .collect();
    let cpu: Vec<String> = bed
        .vms()
        .iter()
        .map(|vm| {
            format!(
                "{:.1}",
                vm.qemu_cpu_time().unwrap_or_default().as_secs_f64()
            )
        })
        .collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let how = if bed.vms().iter().all(|vm| vm.restored()) {
        "restored"
    } else {
        "booted"
    };
    println!(
        "vms={n} accel={accel:?} start={how} ready_s={:.1} rss_mib={} qemu_cpu_s={} load1={}",
        bed.boot_time().as_secs_f64(),
        rss.join(","),
        cpu.join(","),
        load.split_whitespace().next().unwrap_or("?")
    );
    if args.next().as_deref() == Some("hold") {
        for vm in bed.vms() {
            println!(
                "{}: ssh -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@{}   console: {}",
                vm.name(),
                vm.private_key().display(),
                vm.address(),
                vm.console_log().display()
            );
        }
        std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
    }
    Ok(())
}
