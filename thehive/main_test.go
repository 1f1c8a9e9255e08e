package thehive_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The client and pager tests start fake servers and HTTP connections; none
// may outlive its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
