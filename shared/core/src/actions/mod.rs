//! HubSpot workflow actions that create QuickBooks documents (A1–A11).

pub mod claims;
pub mod request;
pub mod signature;

/// The six custom workflow actions, one Lambda function each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    CreateInvoice,
    CreateEstimate,
    CreateSalesReceipt,
    CreatePaidInvoice,
    CreateExpense,
    CreateRefundReceipt,
}

impl ActionKind {
    pub const ALL: [ActionKind; 6] = [
        ActionKind::CreateInvoice,
        ActionKind::CreateEstimate,
        ActionKind::CreateSalesReceipt,
        ActionKind::CreatePaidInvoice,
        ActionKind::CreateExpense,
        ActionKind::CreateRefundReceipt,
    ];

    /// The document it makes, as named in request ids and records.
    pub fn document(self) -> &'static str {
        match self {
            ActionKind::CreateInvoice => "invoice",
            ActionKind::CreateEstimate => "estimate",
            ActionKind::CreateSalesReceipt => "sales_receipt",
            ActionKind::CreatePaidInvoice => "paid_invoice",
            ActionKind::CreateExpense => "expense",
            ActionKind::CreateRefundReceipt => "refund_receipt",
        }
    }

    /// The label HubSpot users see in the workflow editor.
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::CreateInvoice => "Create QuickBooks invoice",
            ActionKind::CreateEstimate => "Create QuickBooks estimate",
            ActionKind::CreateSalesReceipt => "Create QuickBooks sales receipt",
            ActionKind::CreatePaidInvoice => "Create paid QuickBooks invoice",
            ActionKind::CreateExpense => "Create QuickBooks expense",
            ActionKind::CreateRefundReceipt => "Create QuickBooks refund receipt",
        }
    }
}

/// The HTTP handler of one action's function URL.
pub fn router(kind: ActionKind) -> axum::Router {
    crate::http::not_implemented(kind.label())
}
