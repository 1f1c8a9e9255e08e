package threatq_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

// rawToken logs in to the fake directly.
func rawToken(t *testing.T, s *threatqtest.Server) string {
	t.Helper()
	q := url.Values{"grant_type": {"password"}, "client_id": {s.ClientID}}
	body, _ := json.Marshal(map[string]string{"email": s.Email, "password": s.Password})
	resp, err := http.Post(s.URL+"/api/token?"+q.Encode(), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("login: %v", err)
	}
	return tr.AccessToken
}

// postAttr adds an attribute value behind the client's back.
func postAttr(t *testing.T, s *threatqtest.Server, coll string, id int, name, value string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name, "value": value})
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/%s/%d/attributes", s.URL, coll, id), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+rawToken(t, s))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("post attribute: %d", resp.StatusCode)
	}
}
