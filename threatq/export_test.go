package threatq

import "github.com/tqlabs/tq-mw-thehive/internal/retry"

// Test hooks: the retry policy's pure parts and the parsed base URL.
var (
	Backoff    = retry.Backoff
	CheckRetry = checkRetry
)

func (c *Client) BaseURL() string { return c.base.String() }
