-- Customers: the language of their mail (alert templates).
ALTER TABLE customers ADD COLUMN language TEXT;
