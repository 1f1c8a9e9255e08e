package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// FuzzConfigFile: the config parser and validator never panic on any file,
// and a secret in the file never shows up in an error.
func FuzzConfigFile(f *testing.F) {
	const secret = "Sup3r-s3cret-pw"
	f.Add([]byte("threatq:\n  host: tq\n  client_id: id\n  email: e@x\n  password: " + secret + "\nthehive:\n  url: https://h\n  api_key: " + secret + "\n"))
	f.Add([]byte("threatq: [" + secret + "\n"))
	f.Add([]byte("threatq:\n  password: {" + secret + ": 1}\n"))
	f.Add([]byte("sync:\n  custom_ioc_mapping: true\n  ioc_type_mapping: \"ip IP\"\n"))
	f.Add([]byte("reconcile_interval: x\nretention: -1h\nworker: {concurrency: -3}\n"))
	f.Add([]byte("intake:\n  auth: {type: basic, username: u, password: " + secret + "}\n  max_body_bytes: -1\n"))
	f.Add([]byte("*a\n"))
	secretLine := regexp.MustCompile(`(?m)^[ \t]*(password|api_key|token)[ \t]*:[ \t]*` + secret + `[ \t]*$`)
	f.Fuzz(func(t *testing.T, data []byte) {
		// The marker is a secret only where it is the plain value of a
		// secret key, and everywhere it occurs in data.
		isSecret := bytes.Count(data, []byte(secret)) > 0 &&
			bytes.Count(data, []byte(secret)) == len(secretLine.FindAll(data, -1))
		fc, err := parseConfigFile(data)
		if err == nil {
			_, err = fc.validate()
		}
		if err != nil && isSecret && strings.Contains(err.Error(), secret) {
			t.Fatalf("error shows the secret: %v", err)
		}
	})
}
