//! The client: one device of one account, its local store and its link to the relay.

mod account;
mod contacts;
mod groups;
mod history;
mod prekeys;
mod receive;
mod records;
mod send;
mod sessions;
mod types;

pub use types::{
    Contact, Event, GroupInfo, GroupMember, GroupSent, InitOptions, Message, Sent, Verification,
};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use getrandom::SysRng;
use kith_protocol::rand_core::UnwrapErr;
use kith_protocol::wire::{Handle, Request, Response};
use kith_protocol::{AccountPublicKey, BoundedVec, DeviceId, SafetyNumber};
use tokio::time::Instant;

use self::account::Account;
use crate::error::Error;
use crate::home::Home;
use crate::relay::{Link, LinkError, Push, RelayUrl, TlsTermination};
use crate::store::{Batch, LocalStore, Passphrase, StoreError};

/// How long `receive` waits for the relay to finish pushing the queued messages.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// A clock: seconds since the Unix epoch.
type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// One device's client.
pub struct Client {
    home: Home,
    store: LocalStore,
    account: Account,
    link: Option<Link>,
    rng: UnwrapErr<SysRng>,
    /// The clock the prekey rotation runs on (the system clock unless replaced).
    clock: Clock,
    /// When the prekey rotation was last checked (by this clock), so that a connection kept
    /// open for weeks (`kith chat`) still rotates: see [`Client::process`].
    rotation_checked_at: u64,
}

/// How often a long-lived connection checks whether the prekeys are due for rotation.
const ROTATION_CHECK_INTERVAL: u64 = 3600;

impl Client {
    /// Creates the account and this device in `home` (which must not hold one), registers with
    /// the relay and publishes prekeys. On failure the home is left as it was. The relay must
    /// terminate TLS itself: see [`Client::init_with_termination`] for one behind a proxy.
    pub async fn init(
        home: &Home,
        passphrase: &Passphrase,
        options: InitOptions,
    ) -> Result<Self, Error> {
        Self::init_with_termination(home, passphrase, options, TlsTermination::Relay).await
    }

    /// [`Client::init`] for a relay whose TLS ends at `termination`. The setting is stored in
    /// the home and used by every later connection: with [`TlsTermination::Proxy`] this device
    /// never binds its login to TLS.
    pub async fn init_with_termination(
        home: &Home,
        passphrase: &Passphrase,
        options: InitOptions,
        termination: TlsTermination,
    ) -> Result<Self, Error> {
        if home.exists() {
            return Err(Error::HomeExists {
                path: home.path().to_owned(),
            });
        }
        // Reach and trust the relay before anything is written.
        let mut link = Link::connect(&options.relay, &options.trust, termination).await?;
        let created_home = !home.path().exists();
        let result = Self::create(home, passphrase, &options, termination, &mut link).await;
        match result {
            Ok((store, account)) => Ok(Self {
                home: home.clone(),
                store,
                account,
                link: Some(link),
                rng: UnwrapErr(SysRng),
                clock: Arc::new(now),
                rotation_checked_at: 0,
            }),
            Err(e) => {
                // Nothing half-made stays behind: the user can simply run `init` again.
                let _ = std::fs::remove_dir_all(home.store_dir());
                if created_home {
                    let _ = std::fs::remove_dir(home.path());
                }
                Err(e)
            }
        }
    }

    async fn create(
        home: &Home,
        passphrase: &Passphrase,
        options: &InitOptions,
        termination: TlsTermination,
        link: &mut Link,
    ) -> Result<(LocalStore, Account), Error> {
        let store = LocalStore::create(&home.store_dir(), passphrase, options.kdf).map_err(
            |e| match e {
                StoreError::AlreadyExists => Error::HomeExists {
                    path: home.path().to_owned(),
                },
                other => other.into(),
            },
        )?;
        let mut rng = UnwrapErr(SysRng);
        let created = account::create(
            &store,
            &options.handle,
            &options.relay,
            &options.trust,
            termination,
            now(),
            &mut rng,
        )?;
        account::register(&store, link, &created, options.invite.as_deref()).await?;
        Ok((store, created.account))
    }

    /// Opens the account in `home`.
    pub fn open(home: &Home, passphrase: &Passphrase) -> Result<Self, Error> {
        if !home.exists() {
            return Err(Error::NoAccount {
                path: home.path().to_owned(),
            });
        }
        let store = LocalStore::open(&home.store_dir(), passphrase)?;
        if !account::load_record(&store)?.registered {
            return Err(Error::NotRegistered {
                path: home.path().to_owned(),
            });
        }
        let account = Account::load(&store)?;
        Ok(Self {
            home: home.clone(),
            store,
            account,
            link: None,
            rng: UnwrapErr(SysRng),
            clock: Arc::new(now),
            rotation_checked_at: 0,
        })
    }

    /// Replaces the clock that decides when the signed prekey and the last-resort ML-KEM
    /// prekey rotate and when replaced ones are deleted (the system clock by default; seconds
    /// since the Unix epoch). For tests and simulations, which cannot wait a week.
    pub fn set_clock(&mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) {
        self.clock = Arc::new(clock);
    }

    /// This account's handle.
    pub fn handle(&self) -> &Handle {
        &self.account.handle
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.account.device_id()
    }

    /// The relay this device uses.
    pub fn relay(&self) -> &RelayUrl {
        &self.account.relay
    }

    /// The home directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Connects and authenticates, if not connected yet. A new connection also rotates this
    /// device's signed prekey and last-resort ML-KEM prekey when they are due (weekly), and
    /// deletes replaced ones whose grace period is over.
    pub async fn connect(&mut self) -> Result<(), Error> {
        self.link().await.map(drop)
    }

    async fn link(&mut self) -> Result<&mut Link, Error> {
        let link = match self.link.take() {
            Some(link) => link,
            None => {
                let account = &self.account;
                let mut link =
                    Link::connect(&account.relay, &account.trust, account.termination).await?;
                link.authenticate(&self.account.device, self.account.device_id())
                    .await?;
                self.rotate_prekeys(&mut link).await?;
                link
            }
        };
        Ok(self.link.insert(link))
    }

    /// Rotates the long-term prekeys if due (`prekeys::maintain`). A relay that refuses the new
    /// ones does not keep the device offline: the old ones stay current and published, and the
    /// rotation is tried again at the next connection.
    async fn rotate_prekeys(&mut self, link: &mut Link) -> Result<(), Error> {
        let now = (self.clock)();
        self.rotation_checked_at = now;
        match prekeys::maintain(&self.store, link, &self.account, now, &mut self.rng).await {
            Ok(_) | Err(Error::Link(LinkError::Relay(_)) | Error::UnexpectedResponse { .. }) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets a connection that failed, so the next call reconnects.
    fn check<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if matches!(
            result,
            Err(Error::Link(
                LinkError::Closed | LinkError::Timeout { .. } | LinkError::Protocol
            ))
        ) {
            self.link = None;
        }
        result
    }

    /// Sends `text` to `to` (every device of theirs, and this account's other devices).
    pub async fn send_text(&mut self, to: &Handle, text: &str) -> Result<Sent, Error> {
        let result = self.send_inner(to, text).await;
        self.check(result)
    }

    async fn send_inner(&mut self, to: &Handle, text: &str) -> Result<Sent, Error> {
        let (store, account, link, rng) = self.parts().await?;
        send::send_text(store, link, account, to, text, rng).await
    }

    /// The store, account, connected link and RNG, borrowed separately.
    async fn parts(
        &mut self,
    ) -> Result<(&LocalStore, &Account, &mut Link, &mut UnwrapErr<SysRng>), Error> {
        self.link().await?;
        let link = self.link.as_mut().ok_or(Error::Link(LinkError::Closed))?;
        Ok((&self.store, &self.account, link, &mut self.rng))
    }

    /// Waits up to `timeout` (forever when `None`) for the relay's next push; `Ok(None)` on
    /// timeout. Connects first if needed. Cancel-safe; pass the push to [`Client::process`].
    pub async fn next_push(&mut self, timeout: Option<Duration>) -> Result<Option<Push>, Error> {
        let result = match self.link().await {
            Ok(link) => link.next_push(timeout).await.map_err(Error::from),
            Err(e) => Err(e),
        };
        self.check(result)
    }

    /// Handles one push: decrypts and stores a delivery, then acknowledges it; publishes
    /// prekeys when the relay runs low. On a connection open for more than an hour it also
    /// rotates the long-term prekeys when they are due, as a new connection does.
    pub async fn process(&mut self, push: Push) -> Result<Vec<Event>, Error> {
        let mut result = self.process_inner(push).await;
        if result.is_ok()
            && (self.clock)().saturating_sub(self.rotation_checked_at) >= ROTATION_CHECK_INTERVAL
            && let Some(mut link) = self.link.take()
        {
            let rotated = self.rotate_prekeys(&mut link).await;
            self.link = Some(link);
            result = rotated.and(result);
        }
        self.check(result)
    }

    async fn process_inner(&mut self, push: Push) -> Result<Vec<Event>, Error> {
        let (store, account, link, rng) = self.parts().await?;
        match push {
            Push::QueueDrained => Ok(vec![Event::QueueDrained]),
            Push::PrekeyCountLow { .. } => {
                let count = prekeys::top_up(store, link, account, rng).await?;
                Ok(vec![Event::PrekeysPublished { count }])
            }
            Push::Deliver(delivery) => {
                let events = receive::delivery(store, link, account, &delivery, rng).await?;
                let deliveries = BoundedVec::new(vec![delivery.delivery_id])
                    .ok_or(Error::UnexpectedResponse { what: "a delivery" })?;
                match link.request(Request::Ack { deliveries }).await? {
                    Response::Ok => Ok(events),
                    _ => Err(Error::UnexpectedResponse {
                        what: "an answer to an acknowledgement",
                    }),
                }
            }
        }
    }

    /// Receives everything queued, then, with `wait`, whatever arrives until it has elapsed;
    /// `on_event` sees each event as it happens.
    pub async fn receive(
        &mut self,
        wait: Option<Duration>,
        mut on_event: impl FnMut(&Event),
    ) -> Result<(), Error> {
        // A fresh connection, so the relay pushes the whole queue and then `QueueDrained` (an
        // open one had its `QueueDrained` long ago; unacknowledged pushes come again).
        if let Some(link) = self.link.take() {
            link.close().await;
        }
        self.connect().await?;
        let deadline = wait.map(|wait| Instant::now() + wait);
        let mut drained = false;
        loop {
            let timeout = if drained {
                match deadline {
                    None => return Ok(()),
                    Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                }
            } else {
                QUEUE_TIMEOUT
            };
            if drained && timeout.is_zero() {
                return Ok(());
            }
            let Some(push) = self.next_push(Some(timeout)).await? else {
                if drained {
                    return Ok(());
                }
                return Err(Error::Link(LinkError::Timeout {
                    url: self.account.relay.clone(),
                }));
            };
            drained |= push == Push::QueueDrained;
            for event in self.process(push).await? {
                on_event(&event);
            }
        }
    }

    /// The last `limit` messages (all without a limit) of the conversation with `with`, oldest
    /// first.
    pub fn history(&self, with: &Handle, limit: Option<usize>) -> Result<Vec<Message>, Error> {
        Ok(history::list(&self.store, with, limit)?)
    }

    /// Every contact, sorted by handle.
    pub fn contacts(&self) -> Result<Vec<Contact>, Error> {
        let mut list: Vec<Contact> = contacts::all(&self.store)?
            .iter()
            .filter_map(|c| {
                Some(Contact {
                    handle: Handle::parse(&c.handle).ok()?,
                    verified: c.verified,
                    key_changed: c.pending_key.is_some(),
                    devices: c.devices.len(),
                    last_message_at: c.last_message_at,
                })
            })
            .collect();
        list.sort_by(|a, b| a.handle.cmp(&b.handle));
        Ok(list)
    }

    /// The safety number with `with` (looked up at the relay if not a contact yet). When the
    /// contact's key changed, it is the number for the new key.
    pub async fn verification(&mut self, with: &Handle) -> Result<Verification, Error> {
        let result = self.verification_inner(with).await;
        self.check(result)
    }

    async fn verification_inner(&mut self, with: &Handle) -> Result<Verification, Error> {
        if *with == self.account.handle {
            return Err(Error::SelfSend);
        }
        let contact = match contacts::load(&self.store, with)? {
            Some(contact) => contact,
            None => {
                let link = self.link().await?;
                let directory = contacts::lookup(link, with).await?;
                contacts::pin(&self.store, with, &directory)?
            }
        };
        let key = AccountPublicKey::from_bytes(contact.pending_key.unwrap_or(contact.account_key));
        let safety_number = SafetyNumber::compute(
            self.account.account_key(),
            self.account.handle.as_str(),
            &key,
            with.as_str(),
        )
        .map_err(|_| Error::InvalidHandle(kith_protocol::wire::HandleError::TooLong))?;
        Ok(Verification {
            handle: with.clone(),
            safety_number,
            verified: contact.verified && contact.pending_key.is_none(),
            key_changed: contact.pending_key.is_some(),
        })
    }

    /// Marks `with`'s current account key as verified by the user, accepting a changed key.
    pub async fn confirm(&mut self, with: &Handle) -> Result<Verification, Error> {
        let shown = self.verification(with).await?;
        let mut contact = contacts::load(&self.store, with)?.ok_or(Error::UnknownHandle {
            handle: with.clone(),
        })?;
        if let Some(key) = contact.pending_key.take() {
            contact.account_key = key;
            // The old key's devices are gone; the next send looks the new ones up.
            contact.devices.clear();
        }
        contact.verified = true;
        let mut batch = Batch::new();
        contacts::save(&mut batch, &contact)?;
        self.store.apply(batch)?;
        Ok(Verification {
            verified: true,
            key_changed: false,
            ..shown
        })
    }

    /// Closes the connection to the relay, if any.
    pub async fn close(mut self) {
        if let Some(link) = self.link.take() {
            link.close().await;
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
