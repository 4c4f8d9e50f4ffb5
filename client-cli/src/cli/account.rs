//! `kith init`, `kith contacts` and `kith verify`.

use std::fs;
use std::path::Path;

use anyhow::{Result, anyhow};
use kith::{Client, Home, InitOptions, KdfParams, TlsTermination, Trust, Verification};
use kith_protocol::wire::Handle;
use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use serde_json::{Value, json};

use super::args::{InitArgs, JsonArg, VerifyArgs};
use super::format::{contact_json, contact_line, safety_rows};
use super::session::{new_passphrase, note, out, out_each};

/// `kith init`: creates the account, this device and its store, and registers.
pub(crate) async fn init(home: &Home, args: InitArgs) -> Result<()> {
    if home.exists() {
        return Err(kith::Error::HomeExists {
            path: home.path().to_owned(),
        }
        .into());
    }
    let trust = relay_trust(args.relay_fingerprint, args.relay_ca.as_deref())?;
    let termination = tls_termination(args.relay_behind_proxy);
    let passphrase = new_passphrase()?;
    let created_dir = private_home_dir(home.path())?;
    note(&format!(
        "Deriving this device's storage key from your passphrase and registering @{} with {}; \
         this takes a few seconds…",
        args.handle, args.relay
    ));
    let options = InitOptions {
        relay: args.relay.clone(),
        trust,
        handle: args.handle.clone(),
        invite: args.invite,
        kdf: KdfParams::default(),
    };
    let created = Client::init_with_termination(home, &passphrase, options, termination).await;
    let client = match created {
        Ok(client) => client,
        Err(error) => {
            if created_dir {
                // Only succeeds if it is still empty: never removes anything init left.
                let _ = fs::remove_dir(home.path());
            }
            return Err(error.into());
        }
    };
    client.close().await;
    out(&format!(
        "Created @{} on {}. Your passphrase unlocks this device's keys; there is no way to \
         recover it.",
        args.handle, args.relay
    ))?;
    Ok(())
}

/// Where TLS ends, from `--relay-behind-proxy`.
fn tls_termination(behind_proxy: bool) -> TlsTermination {
    if behind_proxy {
        TlsTermination::Proxy
    } else {
        TlsTermination::Relay
    }
}

/// How to trust the relay's certificate, from `--relay-ca` / `--relay-fingerprint`.
fn relay_trust(fingerprint: Option<[u8; 32]>, ca: Option<&Path>) -> Result<Trust> {
    if let Some(fingerprint) = fingerprint {
        return Ok(Trust::Fingerprint(fingerprint));
    }
    let Some(path) = ca else {
        return Ok(Trust::System);
    };
    let pem = fs::read_to_string(path).map_err(|error| {
        anyhow!(
            "Could not read the relay certificate file {}: {error}.",
            path.display()
        )
    })?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(anyhow!(
            "{} holds no PEM certificate (a block starting with -----BEGIN CERTIFICATE-----). \
             Ask the relay's operator for its CA certificate.",
            path.display()
        ));
    }
    Ok(Trust::Certificate(pem))
}

/// Creates the home directory readable by this user only (0700), so the store inside is
/// private whatever the process umask. Returns whether it was created here.
fn private_home_dir(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .map_err(|error| anyhow!("Could not create {}: {error}.", path.display()))?;
    Ok(true)
}

/// `kith contacts`.
pub(crate) fn contacts(client: &Client, args: JsonArg) -> Result<()> {
    let contacts = client.contacts()?;
    if contacts.is_empty() && !args.json {
        note("No contacts yet: send someone a message with `kith send HANDLE TEXT`.");
    }
    let width = contacts
        .iter()
        .map(|c| c.handle.as_str().len() + 1)
        .max()
        .unwrap_or(0);
    out_each(&contacts, args.json, contact_json, |c| {
        contact_line(c, width)
    })?;
    Ok(())
}

/// `kith verify`: shows the safety number, or with `--confirm` marks it verified.
pub(crate) async fn verify(client: &mut Client, args: VerifyArgs) -> Result<()> {
    if args.confirm {
        return confirm(client, &args).await;
    }
    let verification = client.verification(&args.handle).await?;
    if args.json {
        out(&verification_json(&verification).to_string())?;
    } else {
        out(&verification_text(&verification))?;
    }
    Ok(())
}

async fn confirm(client: &mut Client, args: &VerifyArgs) -> Result<()> {
    let was_changed = client
        .contacts()?
        .iter()
        .any(|c| c.handle == args.handle && c.key_changed);
    let verification = client.confirm(&args.handle).await?;
    if args.json {
        out(&verification_json(&verification).to_string())?;
    } else if was_changed {
        out(&format!(
            "Accepted @{}'s new key and marked them as verified. You can send to them again.",
            args.handle
        ))?;
    } else {
        out(&format!("Marked @{} as verified.", args.handle))?;
    }
    Ok(())
}

fn verification_json(verification: &Verification) -> Value {
    json!({
        "handle": verification.handle.as_str(),
        "safety_number": verification.safety_number.digits(),
        "verified": verification.verified,
        "key_changed": verification.key_changed,
    })
}

/// The safety number, its QR code and what to do with them.
fn verification_text(verification: &Verification) -> String {
    let number = &verification.safety_number;
    let mut text = format!("{}\n\n", status_line(verification));
    for row in safety_rows(number.groups()) {
        text.push_str(&format!("    {row}\n"));
    }
    if let Some(qr) = qr_code(&number.scannable()) {
        text.push('\n');
        text.push_str(&qr);
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&advice(&verification.handle));
    text
}

fn status_line(verification: &Verification) -> String {
    let h = &verification.handle;
    if verification.key_changed {
        format!(
            "@{h}'s account key has CHANGED. This is the new safety number; sending to @{h} is \
             paused until you accept it."
        )
    } else if verification.verified {
        format!("Safety number with @{h} (verified).")
    } else {
        format!("Safety number with @{h} (not verified).")
    }
}

fn advice(handle: &Handle) -> String {
    format!(
        "Compare these 60 digits with @{handle} in person or on a call: their Kith shows\n\
         the same number. If every digit matches, run:\n\n    kith verify {handle} --confirm\n\n\
         If they differ, do not confirm: someone may be pretending to be one of you."
    )
}

/// The scannable form as a QR code drawn with half-block characters (light modules drawn,
/// which suits terminals with a dark background).
fn qr_code(bytes: &[u8]) -> Option<String> {
    let code = QrCode::with_error_correction_level(bytes, EcLevel::L).ok()?;
    let image = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build();
    Some(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_code_of_a_scannable_safety_number_fits_80_by_24() {
        let qr = qr_code(&[7u8; 65]).unwrap();
        let lines: Vec<&str> = qr.lines().collect();
        assert!(lines.len() <= 24, "{} lines", lines.len());
        assert!(lines.iter().all(|l| l.chars().count() <= 80));
        assert!(qr.contains('\u{2588}') || qr.contains('\u{2580}'));
    }

    #[test]
    fn advice_names_the_confirm_command() {
        let advice = advice(&Handle::parse("bob").unwrap());
        assert!(advice.contains("kith verify bob --confirm"));
        assert!(advice.contains("@bob"));
    }

    #[test]
    fn trust_from_flags() {
        assert_eq!(relay_trust(None, None).unwrap(), Trust::System);
        assert_eq!(
            relay_trust(Some([1; 32]), None).unwrap(),
            Trust::Fingerprint([1; 32])
        );
        let error = relay_trust(None, Some(Path::new("/nonexistent/kith-ca.pem")));
        let error = error.unwrap_err().to_string();
        assert!(error.contains("/nonexistent/kith-ca.pem"), "{error}");
    }
}
