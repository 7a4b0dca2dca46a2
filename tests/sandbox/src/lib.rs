//! Local stand-ins for QuickBooks Online and HubSpot, faithful to their wire formats.
