// Package thehive speaks to TheHive 5: its v1 REST and query API, and the
// audit messages its webhooks send.
package thehive

import "encoding/json"

// Object types of TheHive audit messages that the agent stores and syncs.
// Every other type (Alert, Task, Log, ...) is acknowledged and ignored.
const (
	TypeCase       = "Case"
	TypeObservable = "Observable"
)

// Actions of an audit message, after normalisation (see ParseWebhook).
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
	ActionMerge  = "merge"
	ActionInvoke = "invoke"
)

// Case is a TheHive 5 case as the v1 API returns it (OutputCase). Only the
// fields the agent maps are decoded; *Label fields are absent on TheHive
// 5.0/5.1, so callers derive them from the numbers when empty.
type Case struct {
	ID            string   `json:"_id"`
	Type          string   `json:"_type,omitempty"`
	CreatedBy     string   `json:"_createdBy,omitempty"`
	UpdatedBy     string   `json:"_updatedBy,omitempty"`
	CreatedAt     int64    `json:"_createdAt"`
	UpdatedAt     int64    `json:"_updatedAt,omitempty"`
	Number        int64    `json:"number"`
	Title         string   `json:"title"`
	Description   string   `json:"description"`
	Severity      int      `json:"severity"`
	SeverityLabel string   `json:"severityLabel,omitempty"`
	StartDate     int64    `json:"startDate"`
	EndDate       int64    `json:"endDate,omitempty"`
	Tags          []string `json:"tags,omitempty"`
	Flag          bool     `json:"flag"`
	TLP           int      `json:"tlp"`
	TLPLabel      string   `json:"tlpLabel,omitempty"`
	PAP           int      `json:"pap"`
	PAPLabel      string   `json:"papLabel,omitempty"`
	Status        string   `json:"status"`
	Stage         string   `json:"stage,omitempty"`
	Assignee      string   `json:"assignee,omitempty"`
}

// Modified is the case's last change time in ms: _updatedAt, or _createdAt
// for a case that was never updated (TheHive omits _updatedAt then).
func (c *Case) Modified() int64 {
	if c.UpdatedAt != 0 {
		return c.UpdatedAt
	}
	return c.CreatedAt
}

// Observable is a TheHive 5 observable (OutputObservable). Data is empty for
// file observables, which carry an attachment instead.
type Observable struct {
	ID         string          `json:"_id"`
	Type       string          `json:"_type,omitempty"`
	CreatedBy  string          `json:"_createdBy,omitempty"`
	UpdatedBy  string          `json:"_updatedBy,omitempty"`
	CreatedAt  int64           `json:"_createdAt"`
	UpdatedAt  int64           `json:"_updatedAt,omitempty"`
	DataType   string          `json:"dataType"`
	Data       string          `json:"data,omitempty"`
	StartDate  int64           `json:"startDate"`
	Attachment json.RawMessage `json:"attachment,omitempty"`
	TLP        int             `json:"tlp"`
	TLPLabel   string          `json:"tlpLabel,omitempty"`
	PAP        int             `json:"pap"`
	PAPLabel   string          `json:"papLabel,omitempty"`
	Tags       []string        `json:"tags,omitempty"`
	IOC        bool            `json:"ioc"`
	Sighted    bool            `json:"sighted"`
	Message    string          `json:"message,omitempty"`
}

// Modified is the observable's last change time in ms (see Case.Modified).
func (o *Observable) Modified() int64 {
	if o.UpdatedAt != 0 {
		return o.UpdatedAt
	}
	return o.CreatedAt
}

// Message is one webhook audit message, normalised from either shape TheHive
// sends (the v1 "Audit" shape or the TheHive 3-compatible "audit" shape) so
// that nothing past the intake edge needs to know which one arrived.
type Message struct {
	AuditID        string // audit _id: the idempotency key of a delivery
	Action         string // one of the Action* constants
	ObjectType     string // TypeCase, TypeObservable, or another TheHive type as sent (normalised capitalisation)
	ObjectID       string
	RootID         string // the case id for case and observable messages (the organisation id on a case delete)
	CreatedAt      int64  // audit time, ms since epoch
	Organisation   string
	OrganisationID string

	// Exactly one of Case and Observable is set for create/update/merge
	// messages of those types; both are nil on delete.
	Case       *Case
	Observable *Observable
}
