package threatq

// Test hooks: the retry policy's pure parts and the parsed base URL.
var (
	Backoff    = backoff
	CheckRetry = checkRetry
)

func (c *Client) BaseURL() string { return c.base.String() }
