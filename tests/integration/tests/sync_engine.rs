//! The sync engine in this process against both sandboxes over HTTP and the template's tables
//! on the local AWS endpoint: contacts ↔ customers and products ↔ items — creates, updates,
//! echoes, conflicts, matching, display names, lost answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use hubspot_qbo_core::clock::Clock;
use hubspot_qbo_core::connection::registry::{Connection, ConnectionStatus, Connections};
use hubspot_qbo_core::connection::tokens::{TokenKeeper, TokenOwner};
use hubspot_qbo_core::domain::{ConnectionId, Direction, ObjectKind, PortalId, Provider, RealmId};
use hubspot_qbo_core::http::bearer::FixedBearer;
use hubspot_qbo_core::http::pacing::Unpaced;
use hubspot_qbo_core::hubspot::{BatchInput, CrmObject, HubSpotClient, HubSpotLimits};
use hubspot_qbo_core::ledger::{Ledger, LinkStatus};
use hubspot_qbo_core::oauth::{HttpProviders, TokenGrant};
use hubspot_qbo_core::qbo::entities::Customer;
use hubspot_qbo_core::qbo::query::Query;
use hubspot_qbo_core::qbo::{QboClient, QboLimits};
use hubspot_qbo_core::runtime::Services;
use hubspot_qbo_core::settings::{default_settings, ConflictWinner, ObjectSettings, SettingsStore};
use hubspot_qbo_core::store::TransactOutcome;
use hubspot_qbo_core::sync::engine::{Applied, Engine};
use integration_tests::Deployed;
use sandbox::hubspot::{HubSpotConfig, SpawnedHubSpot};
use sandbox::qbo::{QboConfig, SpawnedQbo};
use secrecy::SecretString;
use serde_json::{json, Value};

const PORTAL: &str = "62515";
const REALM: &str = sandbox::qbo::seed::DEFAULT_US_REALM;

struct Harness {
    deployed: Deployed,
    qbo: SpawnedQbo,
    hubspot: SpawnedHubSpot,
    http: reqwest::Client,
    services: Services,
    engine: Engine,
    connection: ConnectionId,
    hubspot_token: SecretString,
    qbo_token: SecretString,
}

async fn mint(http: &reqwest::Client, base: &str, body: Value) -> anyhow::Result<TokenGrant> {
    let pair: Value = http
        .post(format!("{base}/_sandbox/tokens"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(TokenGrant {
        access_token: SecretString::from(
            pair["access_token"].as_str().unwrap_or_default().to_owned(),
        ),
        refresh_token: SecretString::from(
            pair["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        expires_in: 3600,
    })
}

impl Harness {
    async fn start(edit: impl FnOnce(&mut [ObjectSettings])) -> anyhow::Result<Self> {
        let deployed = Deployed::start().await?;
        let qbo = sandbox::qbo::spawn(QboConfig::default()).await?;
        let hubspot = sandbox::hubspot::spawn(HubSpotConfig::default()).await?;
        let http = reqwest::Client::new();
        let mut config = deployed.config_of("ObjectSyncFunction")?;
        config.qbo.api_base_url = qbo.base_url.clone();
        config.hubspot.api_base_url = hubspot.base_url.clone();
        let services = Services::new(config.clone(), &deployed.sdk);
        let tokens = Arc::new(TokenKeeper::from_services(
            &services,
            Arc::new(HttpProviders::new(&config)?),
        ));
        let (portal, realm) = (PortalId::parse(PORTAL)?, RealmId::parse(REALM)?);
        let hubspot_grant = mint(&http, &hubspot.base_url, json!({})).await?;
        let qbo_grant = mint(&http, &qbo.base_url, json!({"realm_id": REALM})).await?;
        let (hubspot_token, qbo_token) = (
            hubspot_grant.access_token.clone(),
            qbo_grant.access_token.clone(),
        );
        tokens
            .store_grant(&TokenOwner::Portal(portal.clone()), &hubspot_grant)
            .await?;
        tokens
            .store_grant(&TokenOwner::Realm(realm.clone()), &qbo_grant)
            .await?;
        let now = Clock::system().now_seconds();
        let connection = Connection {
            id: ConnectionId::for_pair(&portal, &realm),
            portal_id: portal,
            realm_id: realm,
            status: ConnectionStatus::Active,
            reconnect_provider: None,
            company_name: "Sandbox Company_US_1".into(),
            connected_at: now,
            updated_at: now,
            disconnected_at: None,
            initial_sync_requested_at: Some(now),
            install_url: None,
        };
        Connections::new(services.store.clone())
            .save(&connection, None)
            .await?;
        let mut settings = default_settings(time::OffsetDateTime::now_utc().date());
        edit(&mut settings);
        let store = SettingsStore::new(services.store.clone());
        let (writes, _) = store.default_writes(&connection.id, &settings, now).await?;
        assert_eq!(
            services.store.transact(writes).await?,
            TransactOutcome::Written
        );
        let engine = Engine::new(
            services.store.clone(),
            tokens,
            QboClient::new(&qbo.base_url, Arc::new(Unpaced), QboLimits::default())?,
            HubSpotClient::new(
                &hubspot.base_url,
                Arc::new(Unpaced),
                HubSpotLimits::default(),
            )?,
            Clock::system(),
        );
        Ok(Self {
            deployed,
            qbo,
            hubspot,
            http,
            services,
            engine,
            connection: connection.id,
            hubspot_token,
            qbo_token,
        })
    }

    fn hubspot_client(&self) -> anyhow::Result<HubSpotClient> {
        Ok(HubSpotClient::new(
            &self.hubspot.base_url,
            Arc::new(Unpaced),
            HubSpotLimits::default(),
        )?)
    }

    fn qbo_client(&self) -> anyhow::Result<QboClient> {
        Ok(QboClient::new(
            &self.qbo.base_url,
            Arc::new(Unpaced),
            QboLimits::default(),
        )?)
    }

    /// Creates (or updates) HubSpot contacts by email, as a person would.
    async fn hubspot_contacts(
        &self,
        contacts: &[&[(&str, &str)]],
    ) -> anyhow::Result<Vec<CrmObject>> {
        let client = self.hubspot_client()?;
        let bearer = FixedBearer(self.hubspot_token.clone());
        let portal = PortalId::parse(PORTAL)?;
        let inputs: Vec<BatchInput> = contacts
            .iter()
            .map(|pairs| {
                let properties: BTreeMap<String, String> = pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                BatchInput {
                    id: properties.get("email").cloned(),
                    id_property: Some("email".into()),
                    properties,
                    object_write_trace_id: None,
                }
            })
            .collect();
        let outcome = client
            .portal(&portal, &bearer)
            .batch_upsert("contacts", &inputs)
            .await?;
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        self.read_hubspot(
            "contacts",
            &outcome
                .results
                .iter()
                .map(|r| r.id.clone())
                .collect::<Vec<_>>(),
        )
        .await
    }

    async fn read_hubspot(
        &self,
        object_type: &str,
        ids: &[String],
    ) -> anyhow::Result<Vec<CrmObject>> {
        let client = self.hubspot_client()?;
        let bearer = FixedBearer(self.hubspot_token.clone());
        let portal = PortalId::parse(PORTAL)?;
        let properties = [
            "email",
            "firstname",
            "lastname",
            "phone",
            "mobilephone",
            "company",
            "address",
            "city",
            "state",
            "zip",
            "country",
            "lastmodifieddate",
            "associatedcompanyid",
            "qbo_customer_id",
            "name",
            "hs_sku",
            "price",
            "description",
            "hs_cost_of_goods_sold",
            "hs_product_type",
            "hs_lastmodifieddate",
            "qbo_item_id",
        ];
        Ok(client
            .portal(&portal, &bearer)
            .batch_read(object_type, ids, &properties, None)
            .await?
            .results)
    }

    async fn customers(&self) -> anyhow::Result<Vec<Value>> {
        let client = self.qbo_client()?;
        let bearer = FixedBearer(self.qbo_token.clone());
        let realm = RealmId::parse(REALM)?;
        Ok(client
            .company(&realm, &bearer)
            .query_all_values(&Query::select("Customer").active_or_not())
            .await?)
    }

    async fn apply(
        &self,
        object: ObjectKind,
        from: Provider,
        records: Vec<Value>,
    ) -> anyhow::Result<Applied> {
        Ok(self
            .engine
            .apply(&self.connection, object, from, &records)
            .await?)
    }

    async fn qbo_writes(&self) -> anyhow::Result<u64> {
        let counters: Value = self
            .http
            .get(format!("{}/_sandbox/counters", self.qbo.base_url))
            .send()
            .await?
            .json()
            .await?;
        Ok(counters["endpoints"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.starts_with("POST") && !key.contains("/query"))
            .filter_map(|(_, c)| {
                c["total"]
                    .as_u64()
                    .or_else(|| c["by_status"]["200"].as_u64())
            })
            .sum())
    }

    fn ledger(&self) -> Ledger {
        Ledger::new(self.services.store.clone())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.deployed.stop().await
    }
}

fn as_values(records: &[CrmObject]) -> Vec<Value> {
    records
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect()
}

/// Contacts two-way with no filter towards QuickBooks (the default filter waits for invoices).
fn open_contacts(settings: &mut [ObjectSettings]) {
    settings[0].filters.hubspot_to_qbo.clear();
}

#[tokio::test]
async fn contacts_become_customers_once_and_echoes_write_nothing() -> anyhow::Result<()> {
    let h = Harness::start(open_contacts).await?;
    let contacts = h
        .hubspot_contacts(&[
            &[
                ("email", "Ann@Example.com"),
                ("firstname", "Ann"),
                ("lastname", "Lee"),
                ("phone", "555-0101"),
            ],
            &[
                ("email", "bo@example.com"),
                ("firstname", "Bo"),
                ("lastname", "O'Neil"),
            ],
        ])
        .await?;
    let applied = h
        .apply(ObjectKind::Contact, Provider::HubSpot, as_values(&contacts))
        .await?;
    assert_eq!((applied.created, applied.failed), (2, 0), "{applied:?}");
    let customers = h.customers().await?;
    let ann = customers
        .iter()
        .find(|c| c["PrimaryEmailAddr"]["Address"] == "ann@example.com")
        .ok_or_else(|| anyhow::anyhow!("no customer for Ann: {customers:?}"))?;
    assert_eq!(ann["DisplayName"], "Ann Lee");
    assert_eq!(ann["PrimaryPhone"]["FreeFormNumber"], "555-0101");
    assert!(customers.iter().any(|c| c["DisplayName"] == "Bo O'Neil"));
    let synced = h
        .ledger()
        .with_status(
            &h.connection,
            ObjectKind::Contact,
            LinkStatus::Synced,
            Clock::system().now_seconds(),
        )
        .await?;
    assert_eq!(synced.len(), 2);

    // The same changes again, and QuickBooks' echo of our writes: nothing is written.
    let writes = h.qbo_writes().await?;
    assert!(writes >= 1, "the creates were counted: {writes}");
    let again = h
        .apply(ObjectKind::Contact, Provider::HubSpot, as_values(&contacts))
        .await?;
    assert_eq!(
        (again.created, again.updated, again.unchanged),
        (0, 0, 2),
        "{again:?}"
    );
    let echo = h
        .apply(ObjectKind::Contact, Provider::Qbo, h.customers().await?)
        .await?;
    assert_eq!(
        (echo.created, echo.updated, echo.linked),
        (0, 0, 0),
        "{echo:?}"
    );
    assert_eq!(
        h.qbo_writes().await?,
        writes,
        "no QuickBooks write for replays and echoes"
    );

    // A change in QuickBooks reaches HubSpot; HubSpot's echo of it comes back as nothing.
    let client = h.qbo_client()?;
    let bearer = FixedBearer(h.qbo_token.clone());
    let realm = RealmId::parse(REALM)?;
    let company = client.company(&realm, &bearer);
    let ann_customer: Customer = serde_json::from_value(ann.clone())?;
    company
        .update(&Customer {
            id: ann_customer.id.clone(),
            sync_token: ann_customer.sync_token.clone(),
            sparse: Some(true),
            given_name: Some("Annie".into()),
            ..Customer::default()
        })
        .await?;
    let changed: Vec<Value> = h
        .customers()
        .await?
        .into_iter()
        .filter(|c| c["Id"] == ann["Id"])
        .collect();
    let update = h.apply(ObjectKind::Contact, Provider::Qbo, changed).await?;
    assert_eq!(update.updated, 1, "{update:?}");
    let contact = h
        .read_hubspot("contacts", &[contacts[0].id.clone()])
        .await?;
    assert_eq!(contact[0].property("firstname"), Some("Annie"));
    assert_eq!(contact[0].property("qbo_customer_id"), ann["Id"].as_str());
    let hubspot_echo = h
        .apply(ObjectKind::Contact, Provider::HubSpot, as_values(&contact))
        .await?;
    assert_eq!(
        (
            hubspot_echo.updated,
            hubspot_echo.created,
            hubspot_echo.unchanged
        ),
        (0, 0, 1),
        "{hubspot_echo:?}"
    );
    h.stop().await
}

#[tokio::test]
async fn customers_become_contacts_and_match_by_email() -> anyhow::Result<()> {
    let h = Harness::start(|settings| {
        open_contacts(settings);
        settings[0].conflict = ConflictWinner::QuickBooks;
        settings[0].direction = Direction::TwoWay;
    })
    .await?;
    // A contact exists in HubSpot already with the email of a QuickBooks customer.
    let existing = h
        .hubspot_contacts(&[&[("email", "cara@example.com"), ("firstname", "Cara")]])
        .await?;
    let client = h.qbo_client()?;
    let bearer = FixedBearer(h.qbo_token.clone());
    let realm = RealmId::parse(REALM)?;
    let company = client.company(&realm, &bearer);
    for (name, email) in [
        ("Cara Diaz", Some("Cara@Example.com")),
        ("No Email Co", None),
    ] {
        let mut customer = Customer {
            display_name: Some(name.into()),
            given_name: Some(name.split(' ').next().unwrap_or(name).into()),
            ..Customer::default()
        };
        customer.primary_email_addr =
            email.map(|e| hubspot_qbo_core::qbo::entities::EmailAddress {
                address: Some(e.into()),
            });
        company
            .create(
                &customer,
                &hubspot_qbo_core::domain::QboRequestId::parse(format!("seed-{}", name.len()))?,
            )
            .await?;
    }
    let customers: Vec<Value> = h
        .customers()
        .await?
        .into_iter()
        .filter(|c| c["DisplayName"] == "Cara Diaz" || c["DisplayName"] == "No Email Co")
        .collect();
    let applied = h
        .apply(ObjectKind::Contact, Provider::Qbo, customers.clone())
        .await?;
    assert_eq!(
        (applied.linked, applied.created, applied.failed),
        (1, 1, 0),
        "{applied:?}"
    );
    // Cara was linked, not duplicated; QuickBooks wins the link, so her first name is QBO's.
    let cara = h
        .read_hubspot("contacts", &[existing[0].id.clone()])
        .await?;
    assert_eq!(cara[0].property("firstname"), Some("Cara"));
    assert!(cara[0].property("qbo_customer_id").is_some());
    // Replaying the customers changes nothing and makes no second contact.
    let again = h
        .apply(ObjectKind::Contact, Provider::Qbo, customers)
        .await?;
    assert_eq!(
        (again.created, again.linked, again.updated),
        (0, 0, 0),
        "{again:?}"
    );
    h.stop().await
}
