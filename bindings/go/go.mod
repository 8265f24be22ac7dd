module breakerbox

go 1.19
