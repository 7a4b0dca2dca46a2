//! `sandbox`: serves the QuickBooks Online API (and, later, the HubSpot API) on loopback.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("the sandbox APIs are not built yet")
}
