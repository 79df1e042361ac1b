//! The keys a VM holds for each provider: inline ones from the config, fetched ones installed by
//! the filter, and HMAC secrets read from the VM environment.
//!
//! Each change bumps the provider's generation, so cached verifications made with older keys are
//! not reused.

use super::alg::JwsAlgorithm;
use super::config::TokenConfig;
use super::jwks::{KeyError, KeySet, VerificationKey};

#[derive(Debug, Default, Clone)]
struct ProviderKeys {
    inline: Option<KeySet>,
    fetched: Option<KeySet>,
    hmac: Option<VerificationKey>,
    hmac_alg: Option<JwsAlgorithm>,
    combined: KeySet,
    generation: u64,
}

impl ProviderKeys {
    fn rebuild(&mut self) {
        let mut set = KeySet::default();
        if let Some(k) = &self.inline {
            set.extend(k.clone());
        }
        if let Some(k) = &self.fetched {
            set.extend(k.clone());
        }
        if let Some(k) = &self.hmac {
            set.extend(KeySet::new(vec![k.clone()]));
        }
        self.combined = set;
        self.generation = self.generation.wrapping_add(1);
    }
}

/// Why a key could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyStoreError {
    #[error("there is no provider number {0}")]
    NoSuchProvider(usize),
    #[error("the provider has no 'hmac_secret_env'")]
    NoHmacConfigured,
    #[error("{0}")]
    Key(#[from] KeyError),
}

/// The JWT keys of every provider, for one VM.
#[derive(Debug, Default, Clone)]
pub struct KeyStore {
    providers: Vec<ProviderKeys>,
}

impl KeyStore {
    /// A store with the config's inline keys; remote keys and HMAC secrets come later.
    pub fn new(config: &TokenConfig) -> Self {
        let providers = config
            .providers()
            .iter()
            .map(|p| {
                let mut keys = ProviderKeys {
                    inline: p.inline_jwks.clone(),
                    hmac_alg: p.hmac_secret_env.as_ref().map(|(_, alg)| *alg),
                    ..ProviderKeys::default()
                };
                keys.rebuild();
                keys
            })
            .collect();
        KeyStore { providers }
    }

    fn slot(&mut self, provider: usize) -> Result<&mut ProviderKeys, KeyStoreError> {
        self.providers
            .get_mut(provider)
            .ok_or(KeyStoreError::NoSuchProvider(provider))
    }

    /// Installs a freshly fetched key set (replacing the previous one).
    pub fn set_fetched(&mut self, provider: usize, keys: KeySet) -> Result<(), KeyStoreError> {
        let slot = self.slot(provider)?;
        slot.fetched = Some(keys);
        slot.rebuild();
        Ok(())
    }

    /// Installs the HMAC secret read from the provider's environment variable.
    pub fn set_hmac_secret(&mut self, provider: usize, secret: &[u8]) -> Result<(), KeyStoreError> {
        let slot = self.slot(provider)?;
        let alg = slot.hmac_alg.ok_or(KeyStoreError::NoHmacConfigured)?;
        slot.hmac = Some(VerificationKey::hmac(alg, secret, None)?);
        slot.rebuild();
        Ok(())
    }

    /// Reads every provider's HMAC secret through `env` (the filter's VM environment lookup).
    /// Returns the providers whose secret is missing or unusable; they stay without it (and
    /// answer "keys unavailable" if they have no other key).
    pub fn load_hmac_secrets(
        &mut self,
        config: &TokenConfig,
        env: impl Fn(&str) -> Option<Vec<u8>>,
    ) -> Vec<(usize, Option<KeyStoreError>)> {
        let mut problems = Vec::new();
        for (i, p) in config.providers().iter().enumerate() {
            let Some((var, _)) = &p.hmac_secret_env else {
                continue;
            };
            match env(var) {
                None => problems.push((i, None)),
                Some(secret) => {
                    if let Err(e) = self.set_hmac_secret(i, &secret) {
                        problems.push((i, Some(e)));
                    }
                }
            }
        }
        problems
    }

    /// The provider's JWT keys (empty when none are loaded yet).
    pub fn jwt_keys(&self, provider: usize) -> Option<&KeySet> {
        self.providers.get(provider).map(|p| &p.combined)
    }

    /// Whether the provider has at least one JWT key.
    pub fn has_jwt_keys(&self, provider: usize) -> bool {
        self.jwt_keys(provider).is_some_and(|k| !k.is_empty())
    }

    /// Whether a fetched key set was ever installed for the provider.
    pub fn has_fetched(&self, provider: usize) -> bool {
        self.providers
            .get(provider)
            .is_some_and(|p| p.fetched.is_some())
    }

    /// Changes with every key change of the provider.
    pub fn generation(&self, provider: usize) -> u64 {
        self.providers.get(provider).map_or(0, |p| p.generation)
    }
}
