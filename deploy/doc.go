// Package deploy holds the systemd unit; its test checks the unit file.
package deploy
