//! `catchup`: a device comes online to a queue of 10,000 sealed envelopes. Timed from the
//! start of its connect (TCP, TLS, WebSocket, authentication) until every envelope has
//! arrived and every acknowledgement has been answered; the relay's end-of-queue marker must
//! have come too. Then every envelope is opened and decrypted. Target: ≤ 1 s.

use std::time::Instant;

use anyhow::{Context, ensure};

use super::Figures;
use super::args::Options;
use super::envelopes;
use super::load::WINDOW;
use super::load_receiver::{Expect, receive};
use super::load_relay::{
    MessageTag, Nodes, Pair, RelayWire, connect, send_frames, set_up_pairs, start_relay, stop_relay,
};
use super::load_sender::{Pacing, send};
use super::load_watch::ProcessWatch;
use super::process::{BenchRelay, RelaySpec};

/// Envelopes queued for the device.
const QUEUE: usize = 10_000;
/// [`QUEUE`] under `--quick`.
const QUICK_QUEUE: usize = 2_000;

/// Runs the scenario on a fresh sled relay.
pub(super) async fn run(options: &Options) -> anyhow::Result<Vec<Figures>> {
    let queue = if options.quick { QUICK_QUEUE } else { QUEUE };
    let relay = start_relay(&options.relay_bin, RelaySpec::sled(100)).await?;
    let measured = measure(&relay, queue).await;
    let measured = measured.with_context(|| format!("relay log:\n{}", relay.log()));
    let stopped = stop_relay(relay).await;
    let row = measured?;
    stopped?;
    Ok(vec![row])
}

async fn measure(relay: &BenchRelay, queue: usize) -> anyhow::Result<Figures> {
    let Pair {
        mut sender,
        receiver,
        outbound,
        inbound,
    } = set_up_pairs(Nodes::single(relay), 1)
        .await?
        .pop()
        .context("setup made no pair")?;
    receiver.close().await;

    let recipient = outbound.recipient();
    let (_, mut made) = envelopes::make(vec![outbound], vec![queue]).await?;
    let tag = MessageTag::new();
    let bodies = std::mem::take(&mut made.per_pair)
        .pop()
        .context("no envelopes were made")?;
    let frames = send_frames(&mut sender, &tag, 0, bodies, recipient)?;
    let wire = RelayWire::new(tag, made);
    let queued = send(&wire, &mut sender, 0, frames, Pacing::Window(WINDOW))
        .await
        .context("queueing the envelopes while the device is offline")?;
    let sent = queued.accepted.iter().flatten().count();
    ensure!(
        sent == queue,
        "only {sent} of {queue} envelopes were accepted"
    );
    sender.close().await;

    let watch = ProcessWatch::start(vec![relay.pid()])?;
    let started = Instant::now();
    let mut link = connect(relay.addr(), relay.tls()).await?;
    link.authenticate(inbound.device()).await?;
    let online = Instant::now();
    let expect = Expect {
        messages: queue,
        queue_drained: true,
    };
    let mut log = receive(&wire, &mut link, 0, expect).await?;
    let usage = watch.finish()?;

    let last_arrival = log.arrived.iter().flatten().max().copied();
    let end = [last_arrival, log.last_ack_answer]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(online);
    let seconds = end.saturating_duration_since(started).as_secs_f64();
    let delivered = log.arrived.iter().flatten().count();

    let mut f = Figures::new("catchup", queue as u64);
    f.seconds = seconds;
    f.messages_per_sec = Some(if seconds > 0.0 {
        delivered as f64 / seconds
    } else {
        0.0
    });
    f.sent = Some(sent as u64);
    f.delivered = Some(delivered as u64);
    f.lost = Some((queue - delivered.min(queue)) as u64);
    f.duplicated = Some(log.duplicated);
    usage.record(&mut f, "relay");
    f.set(
        "connect_ms",
        online.saturating_duration_since(started).as_secs_f64() * 1000.0,
    );
    if let Some(drained) = log.queue_drained {
        f.set(
            "drained_seconds",
            drained.saturating_duration_since(started).as_secs_f64(),
        );
    }
    if delivered == queue && log.duplicated == 0 {
        let bodies = vec![std::mem::take(&mut log.bodies)];
        let (_, decrypted) = envelopes::verify(vec![inbound], bodies).await?;
        f.set("decrypted", decrypted);
    }
    Ok(f)
}
