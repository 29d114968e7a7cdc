//! Where an outbound message goes out from: one of the business's WhatsApp numbers, or a Twilio
//! Messaging Service (which picks the number itself), and how a new message is given one.

use std::fmt;
use std::sync::Arc;

use super::PhoneNumber;

/// A Twilio Messaging Service SID: `MG` and 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceSid(String);

/// The text was not a Messaging Service SID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a Messaging Service SID (MG followed by 32 hex digits): {0:?}")]
pub struct InvalidServiceSid(pub String);

impl ServiceSid {
    /// Parses a SID, enforcing its shape.
    pub fn parse(input: &str) -> Result<Self, InvalidServiceSid> {
        let ok = input.len() == 34 && input.starts_with("MG") && input[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if ok { Ok(Self(input.to_owned())) } else { Err(InvalidServiceSid(input.chars().take(64).collect())) }
    }

    /// The SID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an outbound message is sent from (its `from`): a number (`From`) or a Messaging Service
/// (`MessagingServiceSid`). Inbound messages' `from` is the contact's number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// A WhatsApp number of the business.
    Number(PhoneNumber),
    /// A Messaging Service: Twilio picks one of its numbers.
    Service(ServiceSid),
}

/// The text was neither a phone number nor a Messaging Service SID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of this gateway's WhatsApp numbers in E.164 form (+14155238886) or its Messaging Service SID (MG…): {0:?}")]
pub struct InvalidOrigin(pub String);

impl Origin {
    /// `MG…` is a service; anything else must be a number Twilio could hand us.
    pub fn parse(input: &str) -> Result<Self, InvalidOrigin> {
        let input = input.trim();
        if input.starts_with("MG") {
            return ServiceSid::parse(input).map(Self::Service).map_err(|_| InvalidOrigin(input.chars().take(64).collect()));
        }
        PhoneNumber::parse_received(input).map(Self::Number).map_err(|_| InvalidOrigin(input.chars().take(64).collect()))
    }

    /// The stored and displayed form: `+14155238886` or `MG…`. Also its pacing key.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Number(n) => n.as_e164(),
            Self::Service(s) => s.as_str(),
        }
    }

    /// The number, when it is one.
    pub fn number(&self) -> Option<&PhoneNumber> {
        match self {
            Self::Number(n) => Some(n),
            Self::Service(_) => None,
        }
    }
}

impl From<PhoneNumber> for Origin {
    fn from(value: PhoneNumber) -> Self {
        Self::Number(value)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<PhoneNumber> for Origin {
    fn eq(&self, other: &PhoneNumber) -> bool {
        self.number() == Some(other)
    }
}

/// The senders a gateway is configured with (`TWILIO_WHATSAPP_FROM`,
/// `TWILIO_MESSAGING_SERVICE_SID`): at least one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Senders {
    numbers: Arc<[PhoneNumber]>,
    service: Option<ServiceSid>,
}

/// How a new message gets its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This one: named by the request, or the only choice.
    From(Origin),
    /// One of these numbers: the one the recipient last dealt with, if it is still among them;
    /// otherwise the same one every instance would pick ([`Route::pick`]).
    Pool(Arc<[PhoneNumber]>),
}

impl From<PhoneNumber> for Route {
    fn from(value: PhoneNumber) -> Self {
        Self::From(Origin::Number(value))
    }
}

impl Senders {
    /// `numbers` (duplicates dropped) and an optional service; `None` when both are empty.
    pub fn new(numbers: Vec<PhoneNumber>, service: Option<ServiceSid>) -> Option<Self> {
        let mut unique: Vec<PhoneNumber> = Vec::with_capacity(numbers.len());
        for n in numbers {
            if !unique.contains(&n) {
                unique.push(n);
            }
        }
        (!unique.is_empty() || service.is_some()).then(|| Self { numbers: unique.into(), service })
    }

    /// The numbers.
    pub fn numbers(&self) -> &[PhoneNumber] {
        &self.numbers
    }

    /// The Messaging Service.
    pub fn service(&self) -> Option<&ServiceSid> {
        self.service.as_ref()
    }

    /// Every sender: the numbers, then the service.
    pub fn all(&self) -> Vec<Origin> {
        self.numbers.iter().cloned().map(Origin::Number).chain(self.service.clone().map(Origin::Service)).collect()
    }

    /// Whether `origin` is one of them.
    pub fn contains(&self, origin: &Origin) -> bool {
        match origin {
            Origin::Number(n) => self.numbers.contains(n),
            Origin::Service(s) => self.service.as_ref() == Some(s),
        }
    }

    /// The route of a new message that asked for `requested` (`None`: the default, the service
    /// when there is one, else the numbers); a sender not configured here is refused with why.
    pub fn route(&self, requested: Option<Origin>) -> Result<Route, String> {
        match requested {
            Some(origin) if self.contains(&origin) => Ok(Route::From(origin)),
            Some(origin) => Err(format!(
                "{origin} is not one of this gateway's senders ({}); configure it in TWILIO_WHATSAPP_FROM or \
                 TWILIO_MESSAGING_SERVICE_SID, or leave `from` out",
                self.all().iter().map(Origin::as_str).collect::<Vec<_>>().join(", ")
            )),
            None => Ok(match (&self.service, &*self.numbers) {
                (Some(service), _) => Route::From(Origin::Service(service.clone())),
                (None, [only]) => Route::From(Origin::Number(only.clone())),
                (None, _) => Route::Pool(self.numbers.clone()),
            }),
        }
    }
}

impl Route {
    /// The sender of a message to `to` on this route, given the number the recipient last dealt
    /// with (`last`): that one while it is in the pool (the recipient keeps its sender), else
    /// the pool's number with the highest rendezvous hash for `to` — the same on every instance,
    /// and only the recipients of a removed number move.
    pub fn pick(&self, to: &PhoneNumber, last: Option<&Origin>) -> Origin {
        match self {
            Self::From(origin) => origin.clone(),
            Self::Pool(pool) => {
                if let Some(Origin::Number(n)) = last
                    && pool.contains(n)
                {
                    return Origin::Number(n.clone());
                }
                let best = pool.iter().max_by_key(|n| rendezvous(to.as_e164(), n.as_e164())).expect("a pool has a number");
                Origin::Number(best.clone())
            }
        }
    }

    /// Whether the sender depends on the recipient's history.
    pub fn is_pool(&self) -> bool {
        matches!(self, Self::Pool(_))
    }
}

/// FNV-1a over `a`, a separator and `b`: stable across builds and instances (std's hasher is not
/// promised to be), and well enough spread for choosing among a few numbers.
fn rendezvous(a: &str, b: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.bytes().chain(std::iter::once(0)).chain(b.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // A final mix: FNV's low bits alone follow the last bytes too closely.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    const MG: &str = "MG0123456789abcdef0123456789abcdef";

    #[test]
    fn origins_parse_and_print_as_stored() {
        assert_eq!(Origin::parse("+14155238886").unwrap(), Origin::Number(n("+14155238886")));
        assert_eq!(Origin::parse("whatsapp:+14155238886").unwrap().as_str(), "+14155238886");
        assert_eq!(Origin::parse(MG).unwrap().to_string(), MG);
        assert!(Origin::parse("MG123").is_err());
        assert!(Origin::parse("sender-1").is_err());
    }

    #[test]
    fn the_default_route_is_the_service_then_the_only_number_then_the_pool() {
        let one = Senders::new(vec![n("+14155238886")], None).unwrap();
        assert_eq!(one.route(None).unwrap(), Route::From(Origin::Number(n("+14155238886"))));
        let service = Senders::new(vec![n("+14155238886")], Some(ServiceSid::parse(MG).unwrap())).unwrap();
        assert_eq!(service.route(None).unwrap(), Route::From(Origin::parse(MG).unwrap()));
        assert_eq!(
            service.route(Some(Origin::parse("+14155238886").unwrap())).unwrap(),
            Route::From(Origin::parse("+14155238886").unwrap())
        );
        let pool = Senders::new(vec![n("+14155238886"), n("+14155238887"), n("+14155238886")], None).unwrap();
        assert_eq!(pool.numbers().len(), 2, "duplicates are dropped");
        assert!(pool.route(None).unwrap().is_pool());
        let refused = pool.route(Some(Origin::parse("+14155238899").unwrap())).unwrap_err();
        assert!(refused.contains("+14155238899 is not one of this gateway's senders (+14155238886, +14155238887)"), "{refused}");
        assert!(Senders::new(Vec::new(), None).is_none());
    }

    #[test]
    fn a_recipient_keeps_its_sender_until_that_number_is_removed() {
        let numbers: Vec<PhoneNumber> = (0..4).map(|i| n(&format!("+1415523888{i}"))).collect();
        let pool = Route::Pool(numbers.clone().into());
        let recipients: Vec<PhoneNumber> = (0..400).map(|i| n(&format!("+1415555{i:04}"))).collect();
        let first: Vec<Origin> = recipients.iter().map(|to| pool.pick(to, None)).collect();
        // Spread over every number, none with much more than its share.
        for number in &numbers {
            let share = first.iter().filter(|o| *o == number).count();
            assert!((50..=150).contains(&share), "{number}: {share} of 400");
        }
        // A history wins over the hash while its number is in the pool.
        let other = Origin::Number(numbers[3].clone());
        assert_eq!(pool.pick(&recipients[0], Some(&other)), other);
        // Without the last number, only its recipients move.
        let smaller = Route::Pool(numbers[..3].to_vec().into());
        for (to, before) in recipients.iter().zip(&first) {
            let after = smaller.pick(to, Some(before));
            if *before == numbers[3] {
                assert_ne!(after, *before);
            } else {
                assert_eq!(after, *before);
                assert_eq!(smaller.pick(to, None), *before, "the hash alone agrees where the number stayed");
            }
        }
    }
}
