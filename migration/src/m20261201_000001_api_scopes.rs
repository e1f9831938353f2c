//! Tokens of the built-in client name the parts of Gatehouse's API they open
//! (`gatehouse:account gatehouse:admin`; the user's role still decides what they may do).
//! Refresh tokens issued before carry no scope; they get the one a login issues now, so
//! API sessions survive the upgrade.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const BUILTIN_CLIENT: &str = "gatehouse-api";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::update()
                    .table(RefreshTokens::Table)
                    .value(RefreshTokens::Scope, "gatehouse:account gatehouse:admin")
                    .and_where(Expr::col(RefreshTokens::ClientId).eq(BUILTIN_CLIENT))
                    .and_where(Expr::col(RefreshTokens::Scope).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::update()
                    .table(RefreshTokens::Table)
                    .value(RefreshTokens::Scope, Option::<String>::None)
                    .and_where(Expr::col(RefreshTokens::ClientId).eq(BUILTIN_CLIENT))
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    ClientId,
    Scope,
}
