module breakerbox/bindings/go

go 1.19
