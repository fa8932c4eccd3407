//! A userspace UDP impairment proxy for loopback tests (DESIGN.md: the kernel has no netem): it
//! forwards datagrams between one client and an upstream address and drops each one, in either
//! direction, with a settable probability, from a seeded generator so that runs are repeatable.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

/// A running proxy; it stops when the test's runtime ends.
pub struct LossyProxy {
    /// Where the client sends instead of the upstream address.
    pub addr: SocketAddr,
    loss_permille: Arc<AtomicU32>,
}

struct Dice(Mutex<u64>);

impl Dice {
    /// True with probability `permille / 1000` (xorshift64).
    fn lose(&self, permille: u32) -> bool {
        let mut x = self.0.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x % 1000) < u64::from(permille)
    }
}

impl LossyProxy {
    /// Forwards to `upstream`, dropping `loss_permille` of 1000 datagrams each way.
    pub async fn start(upstream: SocketAddr, loss_permille: u32, seed: u64) -> LossyProxy {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(upstream).await.unwrap();
        let addr = front.local_addr().unwrap();
        let loss = Arc::new(AtomicU32::new(loss_permille));
        let dice = Arc::new(Dice(Mutex::new(seed.max(1))));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (f, b, l, d, c) = (
            front.clone(),
            back.clone(),
            loss.clone(),
            dice.clone(),
            client.clone(),
        );
        let (l2, d2) = (loss.clone(), dice);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = f.recv_from(&mut buf).await {
                *c.lock().unwrap() = Some(from);
                if !d.lose(l.load(Ordering::Relaxed)) {
                    let _ = b.send(&buf[..n]).await;
                }
            }
        });
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = back.recv(&mut buf).await {
                let to = *client.lock().unwrap();
                if let Some(to) = to.filter(|_| !d2.lose(l2.load(Ordering::Relaxed))) {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
        LossyProxy {
            addr,
            loss_permille: loss,
        }
    }

    /// Changes the loss, in permille (1000: a black hole).
    pub fn set_loss(&self, permille: u32) {
        self.loss_permille.store(permille, Ordering::Relaxed);
    }
}
