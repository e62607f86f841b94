module mfa-example

go 1.19

require mfa v0.0.0

replace mfa => ../../bindings/go
